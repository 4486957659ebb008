"""feed health: pause after repeated failures, learned cadence and <ttl>, health notices

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paused_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('failing_since', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('cadence', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('ttl', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('last_new_entry_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('health', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True))

    op.create_table('feed_notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('feed_id', sa.Integer(), nullable=False),
    sa.Column('feed_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('destination', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['feed_id'], ['feeds.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('feed_notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feed_notices_feed_id'), ['feed_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_feed_notices_status'), ['status'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('feed_notices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feed_notices_status'))
        batch_op.drop_index(batch_op.f('ix_feed_notices_feed_id'))
    op.drop_table('feed_notices')

    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.drop_column('health')
        batch_op.drop_column('last_new_entry_at')
        batch_op.drop_column('ttl')
        batch_op.drop_column('cadence')
        batch_op.drop_column('failing_since')
        batch_op.drop_column('paused_at')
