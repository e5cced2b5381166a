#!/bin/sh
# Online backup of a single-node (SQLite) cloudpki database, for
# cloudpki-backup.service / .timer; also fine by hand as the cloudpki user.
#
# VACUUM INTO copies the database inside one read transaction: a consistent
# copy taken while the server keeps writing (WAL: readers never block the
# writer). sqlite3's ".backup" works too, but it copies in steps and
# restarts whenever another process commits, which on a busy server (OCSP
# re-signing runs every minute) can take a long time to finish.
#
# Backs up the database only. The KEK is not in it and must be backed up
# separately (deploy/README.md, "Backups").
set -eu

src=${CLOUDPKI_DATA_DIR:-/var/lib/cloudpki}/cloudpki.db
dest=${CLOUDPKI_BACKUP_DIR:-/var/backups/cloudpki}
keep_days=${CLOUDPKI_BACKUP_KEEP_DAYS:-14}

[ -f "$src" ] || { echo "no database at $src" >&2; exit 1; }
stamp=$(date -u +%Y%m%dT%H%M%SZ)
tmp="$dest/.cloudpki-$stamp.db.partial"
out="$dest/cloudpki-$stamp.db"

rm -f "$tmp"
sqlite3 -bail "$src" "VACUUM INTO '$tmp'"
check=$(sqlite3 -readonly "$tmp" "PRAGMA integrity_check")
if [ "$check" != ok ]; then
    echo "integrity_check of $tmp failed: $check" >&2
    rm -f "$tmp"
    exit 1
fi
mv "$tmp" "$out"
find "$dest" -maxdepth 1 -name 'cloudpki-*.db' -mtime +"$keep_days" -delete
echo "$out"
