"""Backups built in: dump, verify, restore, retention, off-site targets, scheduled runs.

A backup is a directory `cronicorn-YYYYMMDDTHHMMSSZ` holding the dump (`pg_dump -Fc`, or the
seed's plain SQL gzipped), `manifest.json` (versions, revision, exact row counts taken in the
dump's own snapshot, size and sha256 of every file) and, when present, the operator's `.env`
and `docker-compose.override.yml` encrypted with BACKUP_PASSPHRASE. The API reaches this
package only through `cronicorn.backup.service`.
"""
