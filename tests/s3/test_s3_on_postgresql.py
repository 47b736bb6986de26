"""The S3 core on the PostgreSQL metadata engine, in every test run (the whole S3 suite runs on it
with NIMBO_TEST_METADATA=postgresql): writes and reads, the group commit under concurrency,
uniqueness (one winner of concurrent conditional writes), versioning, multipart, byte-order
listing, the usage ledger, and the crash stories (a failure between blob and commit, kill -9 of a
writer). These are the SQLite suite's own tests, collected again under the ``postgresql_engine``
mark (tests/postgres_server.py), so both engines meet the same assertions."""
import pytest

from tests.s3.test_crash_safety import (  # noqa: F401
    test_failure_between_blob_and_commit, test_failure_between_blob_and_commit_keeps_every_version,
    test_sigkill_during_versioned_writes, test_sigkill_mid_upload)
from tests.s3.test_listing import test_delimiter_and_prefix, test_utf8_byte_order  # noqa: F401
from tests.s3.test_multipart import test_abort_removes_parts, test_complete_assembles_parts_without_copying  # noqa: F401
from tests.s3.test_objects import (  # noqa: F401
    test_concurrent_if_none_match_only_one_wins, test_concurrent_puts_of_one_key_leave_one_version,
    test_conditional_writes, test_delete_objects, test_ledger_events_are_in_the_bucket_owners_name,
    test_other_accounts_and_anonymous_are_denied, test_overwrite_removes_old_blob_and_accounts_bytes,
    test_put_get_small_object_inline, test_put_large_object_streams_to_a_blob)
from tests.s3.test_versioning import (  # noqa: F401
    test_concurrent_puts_and_deletes_in_one_group_commit,
    test_deleting_a_version_frees_its_space_and_promotes_the_next,
    test_overwrite_delete_and_restore_in_a_versioned_bucket)

pytestmark = pytest.mark.postgresql_engine


async def test_these_run_on_postgresql(s3):
    """The mark takes effect: the harness's store writes to PostgreSQL, not to an SQLite file."""
    assert s3.state.store.db.engine == "postgresql"
    assert s3.state.store.db.path.startswith("postgresql://")
