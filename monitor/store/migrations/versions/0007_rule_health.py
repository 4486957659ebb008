"""rule health: a rule silent for too long gets a notice; feed_notices holds rule notices too

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: str | Sequence[str] | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('rule_health',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('health', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
    sa.Column('last_match_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('changed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('rule_health', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rule_health_rule_id'), ['rule_id'], unique=True)

    # a notice is about a feed (feed_id, feed_name) or a rule (rule_id): one outbox for both
    with op.batch_alter_table('feed_notices', schema=None) as batch_op:
        batch_op.alter_column('feed_id', existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column('feed_name', existing_type=sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
        batch_op.add_column(sa.Column('rule_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_feed_notices_rule_id'), ['rule_id'], unique=False)

    # a rule's newest matches, read with a LIMIT by the silence check: an index range, not a sort of its history
    with op.batch_alter_table('matches', schema=None) as batch_op:
        batch_op.create_index('ix_matches_rule_id_matched_at', ['rule_id', 'matched_at'], unique=False)


def downgrade() -> None:
    """Downgrade schema (rule notices go: feed notices need their feed again)."""
    with op.batch_alter_table('matches', schema=None) as batch_op:
        batch_op.drop_index('ix_matches_rule_id_matched_at')

    op.execute("DELETE FROM feed_notices WHERE feed_id IS NULL")
    with op.batch_alter_table('feed_notices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feed_notices_rule_id'))
        batch_op.drop_column('rule_id')
        batch_op.alter_column('feed_name', existing_type=sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False)
        batch_op.alter_column('feed_id', existing_type=sa.Integer(), nullable=False)

    with op.batch_alter_table('rule_health', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rule_health_rule_id'))
    op.drop_table('rule_health')
