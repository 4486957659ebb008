"""judgements: analysts' feedback on matches (relevant / not relevant) and missed articles

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('judgements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('article_id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('match_id', sa.Integer(), nullable=True),
    sa.Column('verdict', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('comment', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('author', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['article_id'], ['articles.id'], ),
    sa.ForeignKeyConstraint(['match_id'], ['matches.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('judgements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_judgements_article_id'), ['article_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_judgements_rule_id'), ['rule_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_judgements_match_id'), ['match_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_judgements_created_at'), ['created_at'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('judgements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_judgements_created_at'))
        batch_op.drop_index(batch_op.f('ix_judgements_match_id'))
        batch_op.drop_index(batch_op.f('ix_judgements_rule_id'))
        batch_op.drop_index(batch_op.f('ix_judgements_article_id'))
    op.drop_table('judgements')
