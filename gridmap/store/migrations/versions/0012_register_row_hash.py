"""issue 20 (register import speed): register_row_hash

For each elder and department: a hash of the last ledger row merged from that department and a hash of the
elder's stored state (row, household, first contact, area and steward tables) right after it. A re-sent row
equal to the last one over an elder whose state has not changed since is counted unchanged without the
field-by-field merge; anything else goes through the merge as before.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 22:20:00.000000
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0012'
down_revision: Union[str, None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'register_row_hash',
        sa.Column('elder_id', sa.Integer(), nullable=False),
        sa.Column('source', sa.String(length=40), nullable=False),
        sa.Column('row_hash', sa.String(length=32), nullable=False),
        sa.Column('state_hash', sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint('elder_id', 'source'),
    )


def downgrade() -> None:
    op.drop_table('register_row_hash')
