"""issue 18 (the steward in the field): visit.position_distance_m

With the visitor's consent the visit form records the phone's position at saving; the store keeps only its
distance in metres to the elder's home (the 流于形式 check, rules ``formality.max_distance_m``), never the
position or a track.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 22:00:00.000000
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0011'
down_revision: Union[str, None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('visit', sa.Column('position_distance_m', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('visit', schema=None) as batch_op:
        batch_op.drop_column('position_distance_m')
