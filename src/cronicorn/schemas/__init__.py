"""Request and response models of the REST resources: camelCase JSON, snake_case Python.

Conventions (documented once here and in the OpenAPI document):
- Request bodies reject unknown fields (422), so a typo never silently does nothing, and are
  strictly typed: `"1000"` and `true` are not integers, names are not blank.
- Responses leave out an unset optional field (`Absent`), as the reference's clients expect
  (they refuse `null` there); fields documented as nullable are always sent, `null` when
  unset. The OpenAPI document says which is which.
- Timestamps are ISO-8601 UTC with milliseconds (`2025-01-31T12:00:00.000Z`); naive inputs
  are read as UTC.
"""
