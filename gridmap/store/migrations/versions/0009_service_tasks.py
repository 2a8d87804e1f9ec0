"""issue 17 (service tasks, care services, effective visits)

The needs recorded at a visit become service tasks (``service_task`` with its events
``service_task_event``); a care service (附件1-2 六) may answer a task (``care_service.task_id``)
and says who recorded it. The visit gains the items 反应能力 (reaction), 赡养 (family_support),
房屋安全 (housing_safety), 饮水安全 (drinking_water_safety), the needs as codes (``need_kinds``)
and why it is not effective (``ineffective_reason``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 22:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('service_task',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('elder_id', sa.Integer(), nullable=False),
    sa.Column('visit_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('label', sa.String(length=40), nullable=False),
    sa.Column('steward_id', sa.Integer(), nullable=True),
    sa.Column('receiver_unit', sa.String(length=120), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('opened_on', sa.Date(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('in_progress_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('outcome', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=60), nullable=True),
    sa.ForeignKeyConstraint(['elder_id'], ['elder.id'], ),
    sa.ForeignKeyConstraint(['visit_id'], ['visit.id'], ),
    sa.ForeignKeyConstraint(['steward_id'], ['steward.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_service_task_elder_id'), 'service_task', ['elder_id'], unique=False)
    op.create_index(op.f('ix_service_task_visit_id'), 'service_task', ['visit_id'], unique=False)
    op.create_index(op.f('ix_service_task_steward_id'), 'service_task', ['steward_id'], unique=False)
    op.create_index(op.f('ix_service_task_status'), 'service_task', ['status'], unique=False)
    op.create_index('ix_service_task_elder_kind', 'service_task', ['elder_id', 'kind'], unique=False)
    op.create_table('service_task_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('by_user', sa.String(length=60), nullable=False),
    sa.Column('from_status', sa.String(length=20), nullable=True),
    sa.Column('to_status', sa.String(length=20), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('photo_ref', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['task_id'], ['service_task.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_service_task_event_task_id'), 'service_task_event', ['task_id'], unique=False)
    # care_service: batch (SQLite cannot add a foreign key in place; PostgreSQL alters in place)
    with op.batch_alter_table('care_service', schema=None) as batch_op:
        batch_op.add_column(sa.Column('task_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('recorded_by', sa.String(length=60), nullable=True))
        batch_op.create_foreign_key('fk_care_service_task_id', 'service_task', ['task_id'], ['id'])
        batch_op.create_index(batch_op.f('ix_care_service_task_id'), ['task_id'], unique=False)
    # visit: plain nullable columns (in place on both backends; the visit table is the largest)
    op.add_column('visit', sa.Column('reaction', sa.String(length=40), nullable=True))
    op.add_column('visit', sa.Column('family_support', sa.String(length=20), nullable=True))
    op.add_column('visit', sa.Column('housing_safety', sa.String(length=40), nullable=True))
    op.add_column('visit', sa.Column('drinking_water_safety', sa.String(length=40), nullable=True))
    op.add_column('visit', sa.Column('need_kinds', sa.JSON(), nullable=True))
    op.add_column('visit', sa.Column('ineffective_reason', sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('visit', schema=None) as batch_op:
        for c in ('ineffective_reason', 'need_kinds', 'drinking_water_safety', 'housing_safety', 'family_support',
                  'reaction'):
            batch_op.drop_column(c)
    with op.batch_alter_table('care_service', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_care_service_task_id'))
        batch_op.drop_constraint('fk_care_service_task_id', type_='foreignkey')
        batch_op.drop_column('recorded_by')
        batch_op.drop_column('task_id')
    op.drop_index(op.f('ix_service_task_event_task_id'), table_name='service_task_event')
    op.drop_table('service_task_event')
    op.drop_index('ix_service_task_elder_kind', table_name='service_task')
    op.drop_index(op.f('ix_service_task_status'), table_name='service_task')
    op.drop_index(op.f('ix_service_task_steward_id'), table_name='service_task')
    op.drop_index(op.f('ix_service_task_visit_id'), table_name='service_task')
    op.drop_index(op.f('ix_service_task_elder_id'), table_name='service_task')
    op.drop_table('service_task')
