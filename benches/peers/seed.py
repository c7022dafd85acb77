#!/usr/bin/env python3
"""The database of the peer benchmark's `list` endpoint (standard library only).

    seed.py DB COUNT                 fills the users table of DB up to COUNT users
    seed.py --page DB PAGE LIMIT     prints the body `GET /api/v1/users?page=PAGE&limit=LIMIT`
                                     must answer with on DB

DB is a SQLite file that the reference app has created and migrated, holding its
administrator (run.sh starts the app once on it with ARBOR_ADMIN_EMAIL and
ARBOR_ADMIN_PASSWORD, and signs in). The users added here are plain rows inserted directly,
not registrations: registering thousands of users through the API would spend minutes in
argon2. They carry the administrator's password hash (nobody signs in as them; a real hash
keeps the rows the size real ones have), lower-cased emails, trimmed names, role `user`, and
creation times after the administrator's, one millisecond apart, so the list's order is fixed.
"""

import json
import sqlite3
import sys
import uuid

COLUMNS = "id, email, name, role, created_at, updated_at"


def seed(path, count):
    db = sqlite3.connect(path)
    with db:
        (existing,) = db.execute("SELECT COUNT(*) FROM users").fetchone()
        row = db.execute(
            "SELECT password_hash, MAX(created_at) FROM users WHERE role = 'admin'"
        ).fetchone()
        if row is None or row[0] is None:
            sys.exit(f"seed.py: {path} has no administrator to copy a password hash from")
        password_hash, last = row
        rows = []
        for n in range(existing, count):
            created = last + 1 + n
            rows.append(
                (
                    uuid.uuid4().hex,
                    f"user{n}@example.com",
                    f"User {n}",
                    password_hash,
                    "user",
                    created,
                    created,
                )
            )
        db.executemany(
            "INSERT INTO users (id, email, name, password_hash, role, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    # Everything into the main file: run.sh copies the file alone for each server.
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def page(path, page, limit):
    """The list's body as the reference app's serde serializes it: fields in declaration
    order, camelCase names, no whitespace (the rows are ASCII, so no escaping differs)."""
    db = sqlite3.connect(path)
    users = [
        {
            "id": row[0],
            "email": row[1],
            "name": row[2],
            "role": row[3],
            "createdAt": row[4],
            "updatedAt": row[5],
        }
        for row in db.execute(
            f"SELECT {COLUMNS} FROM users ORDER BY created_at, id LIMIT ? OFFSET ?",
            (limit, (page - 1) * limit),
        )
    ]
    (total,) = db.execute("SELECT COUNT(*) FROM users").fetchone()
    db.close()
    body = {
        "users": users,
        "pagination": {
            "page": page,
            "limit": limit,
            "total": total,
            "totalPages": (total + limit - 1) // limit,
        },
    }
    return json.dumps(body, separators=(",", ":"))


def main(args):
    if len(args) == 2:
        seed(args[0], int(args[1]))
    elif len(args) == 4 and args[0] == "--page":
        print(page(args[1], int(args[2]), int(args[3])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
