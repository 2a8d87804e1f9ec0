"""issue 17 (devices, stations, family doctors): device installer and state time, device events and
alarms (one row per alarm, ``alarm_key`` unique so a file ingested twice adds nothing), the 驿站 an
elder is signed with (``elder.station_id``)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 22:00:00.000000
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0010'
down_revision: Union[str, None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('device', sa.Column('installer', sa.String(length=120), nullable=True))
    op.add_column('device', sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        'device_event',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('device_id', sa.Integer(), nullable=False),
        sa.Column('elder_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('by_user', sa.String(length=60), nullable=False),
        sa.Column('from_state', sa.String(length=20), nullable=True),
        sa.Column('to_state', sa.String(length=20), nullable=True),
        sa.Column('alarm_type', sa.String(length=40), nullable=True),
        sa.Column('alarm_time', sa.DateTime(timezone=True), nullable=True),
        sa.Column('alarm_key', sa.String(length=120), nullable=True),
        sa.Column('emergency', sa.Boolean(), nullable=True),
        sa.Column('referral_ids', sa.JSON(), nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['device_id'], ['device.id'], name='fk_device_event_device_id'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('alarm_key', name='uq_device_event_alarm_key'),
    )
    op.create_index('ix_device_event_device_id', 'device_event', ['device_id'])
    op.create_index('ix_device_event_elder_id', 'device_event', ['elder_id'])
    # Not a batch (copy-and-move) on SQLite: rebuilding ``elder`` while visits, hazards and the rest point at
    # it fails their foreign keys on a populated database. SQLite adds a nullable column with its reference in
    # place; PostgreSQL adds the column and the named constraint.
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE elder ADD COLUMN station_id INTEGER '
                   'CONSTRAINT fk_elder_station_id REFERENCES service_station (id)')
    else:
        op.add_column('elder', sa.Column('station_id', sa.Integer(), nullable=True))
        op.create_foreign_key('fk_elder_station_id', 'elder', 'service_station', ['station_id'], ['id'])
    op.create_index('ix_elder_station_id', 'elder', ['station_id'])


def downgrade() -> None:
    op.drop_index('ix_elder_station_id', table_name='elder')
    if op.get_bind().dialect.name == 'sqlite':  # the column and its inline reference go with the copied table
        with op.batch_alter_table('elder', schema=None) as batch_op:
            batch_op.drop_column('station_id')
    else:
        op.drop_constraint('fk_elder_station_id', 'elder', type_='foreignkey')
        op.drop_column('elder', 'station_id')
    op.drop_index('ix_device_event_elder_id', table_name='device_event')
    op.drop_index('ix_device_event_device_id', table_name='device_event')
    op.drop_table('device_event')
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.drop_column('updated_at')
        batch_op.drop_column('installer')
