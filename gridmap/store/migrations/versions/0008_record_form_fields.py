"""record form 附件1-2 in full (issue 20): 其他特殊困难情形 on the elder (the 其他 category's reason)

Sections 三 and 四, the family-doctor wish and the household members already have
their columns (0001); this adds the reason of the 其他 category.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 18:50:00.000000
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0008'
down_revision: Union[str, None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('elder', sa.Column('other_reason', sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('elder', schema=None) as batch_op:
        batch_op.drop_column('other_reason')
