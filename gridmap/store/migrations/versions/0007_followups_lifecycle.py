"""follow-ups worked to closure (issue 16): hazard and referral life-cycles with their events, joint
inspections, the notification outbox, and the visit idempotency key

Hazards ``closed`` become ``fixed``; referrals ``escalated`` go back to the status they had
(``acknowledged`` when acknowledged, else ``open``): escalation is the ``escalated_at`` flag now.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 18:14:47.606403
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0007'
down_revision: Union[str, None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _event_table(name: str, parent: str) -> None:
    op.create_table(name,
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column(f'{parent}_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('by_user', sa.String(length=60), nullable=False),
    sa.Column('from_status', sa.String(length=20), nullable=True),
    sa.Column('to_status', sa.String(length=20), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('photo_ref', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint([f'{parent}_id'], [f'{parent}.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f(f'ix_{name}_{parent}_id'), name, [f'{parent}_id'], unique=False)


def upgrade() -> None:
    op.create_table('joint_inspection',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('street_id', sa.Integer(), nullable=True),
    sa.Column('community_id', sa.Integer(), nullable=True),
    sa.Column('held_on', sa.Date(), nullable=False),
    sa.Column('departments', sa.JSON(), nullable=False),
    sa.Column('homes_visited', sa.JSON(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=60), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['community_id'], ['community.id'], ),
    sa.ForeignKeyConstraint(['street_id'], ['street.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_joint_inspection_street_id'), 'joint_inspection', ['street_id'], unique=False)
    # hazard: batch (SQLite cannot add a foreign key in place; PostgreSQL alters in place),
    # before the tables that reference hazard are made
    with op.batch_alter_table('hazard', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('transferred_to', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('reopened_count', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('inspection_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_hazard_inspection_id'), ['inspection_id'], unique=False)
        batch_op.create_foreign_key('fk_hazard_inspection_id', 'joint_inspection', ['inspection_id'], ['id'])

    _event_table('hazard_event', 'hazard')
    _event_table('referral_event', 'referral')
    op.create_table('notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('elder_id', sa.Integer(), nullable=True),
    sa.Column('hazard_id', sa.Integer(), nullable=True),
    sa.Column('referral_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('recipient', sa.String(length=60), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['elder_id'], ['elder.id'], ),
    sa.ForeignKeyConstraint(['hazard_id'], ['hazard.id'], ),
    sa.ForeignKeyConstraint(['referral_id'], ['referral.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_notification_elder_id'), 'notification', ['elder_id'], unique=False)
    op.create_index('ix_notification_status', 'notification', ['status'], unique=False)

    op.add_column('referral', sa.Column('in_progress_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('referral', sa.Column('satisfaction', sa.String(length=40), nullable=True))
    op.add_column('referral', sa.Column('resolved', sa.Boolean(), nullable=True))

    op.add_column('visit', sa.Column('idempotency_key', sa.String(length=80), nullable=True))
    op.create_index('uq_visit_idempotency_key', 'visit', ['idempotency_key'], unique=True)

    # data: the old states in the new life-cycles
    op.execute("UPDATE hazard SET status = 'fixed' WHERE status = 'closed'")
    op.execute("UPDATE referral SET status = CASE WHEN acknowledged_at IS NOT NULL THEN 'acknowledged' "
               "ELSE 'open' END WHERE status = 'escalated'")
    op.execute("UPDATE referral SET resolved = TRUE WHERE status = 'closed'")


def downgrade() -> None:
    op.execute("UPDATE hazard SET status = 'closed' WHERE status IN ('fixed', 'cannot_fix', 'transferred')")
    op.execute("UPDATE referral SET status = 'escalated' WHERE escalated_at IS NOT NULL AND status != 'closed'")
    op.execute("UPDATE referral SET status = 'acknowledged' WHERE status = 'in_progress'")
    op.drop_index('uq_visit_idempotency_key', table_name='visit')
    with op.batch_alter_table('visit', schema=None) as batch_op:
        batch_op.drop_column('idempotency_key')
    with op.batch_alter_table('referral', schema=None) as batch_op:
        batch_op.drop_column('resolved')
        batch_op.drop_column('satisfaction')
        batch_op.drop_column('in_progress_at')
    with op.batch_alter_table('hazard', schema=None) as batch_op:
        batch_op.drop_constraint('fk_hazard_inspection_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_hazard_inspection_id'))
        batch_op.drop_column('inspection_id')
        batch_op.drop_column('reopened_count')
        batch_op.drop_column('transferred_to')
        batch_op.drop_column('status_reason')
    op.drop_index('ix_notification_status', table_name='notification')
    op.drop_index(op.f('ix_notification_elder_id'), table_name='notification')
    op.drop_table('notification')
    for name, parent in (('referral_event', 'referral'), ('hazard_event', 'hazard')):
        op.drop_index(op.f(f'ix_{name}_{parent}_id'), table_name=name)
        op.drop_table(name)
    op.drop_index(op.f('ix_joint_inspection_street_id'), table_name='joint_inspection')
    op.drop_table('joint_inspection')
