"""Index dispatches by account and code, for picking a free code and matching replies.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_dispatches_account_code", "dispatches", ["account_id", "code"])


def downgrade() -> None:
    op.drop_index("ix_dispatches_account_code", table_name="dispatches")
