"""change log (the change feed every server process follows) and plan proposals kept in the database

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 09:00:00.000000
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0005'
down_revision: Union[str, None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_table('change_log',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('streets', sa.JSON(), nullable=False),
    sa.Column('elders', sa.JSON(), nullable=False),
    sa.Column('many', sa.Boolean(), nullable=False),
    sa.Column('actor', sa.String(length=60), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sqlite_autoincrement=True,
    )
    op.create_table('plan_proposal',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('street', sa.String(length=40), nullable=False),
    sa.Column('week', sa.String(length=10), nullable=False),
    sa.Column('moves', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_plan_proposal_user_id'), 'plan_proposal', ['user_id'], unique=False)
    # append-only, like audit_log and register_change (0001): no UPDATE or DELETE
    if _is_postgres():
        # gridmap_append_only() was created by 0001
        op.execute("CREATE TRIGGER change_log_append_only BEFORE UPDATE OR DELETE ON change_log "
                   "FOR EACH ROW EXECUTE FUNCTION gridmap_append_only()")
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER change_log_no_{verb.lower()} BEFORE {verb} ON change_log "
                "BEGIN SELECT RAISE(ABORT, 'table change_log is append-only'); END"
            )


def downgrade() -> None:
    if _is_postgres():
        op.execute("DROP TRIGGER IF EXISTS change_log_append_only ON change_log")
    else:
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS change_log_no_{verb}")
    op.drop_index(op.f('ix_plan_proposal_user_id'), table_name='plan_proposal')
    op.drop_table('plan_proposal')
    op.drop_table('change_log')
