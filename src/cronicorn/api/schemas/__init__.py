"""Request and response models of the REST resources: camelCase JSON, snake_case Python.

Conventions (documented once here and in the OpenAPI document):
- Request bodies reject unknown fields (422), so a typo never silently does nothing.
- Responses always carry every field; an unset optional field is `null`, never left out.
- Timestamps are ISO-8601 UTC with milliseconds (`2025-01-31T12:00:00.000Z`); naive inputs
  are read as UTC.
"""
