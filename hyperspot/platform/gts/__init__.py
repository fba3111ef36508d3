"""Global Type System (GTS): identifiers, extraction, an in-memory registry and the spec's ops.

Pure library: no I/O, no imports from ``hyperspot.modules``. The names re-exported here are the
stable interface other packages import.
"""

from hyperspot.platform.gts.extract import Extraction, extract, extract_id
from hyperspot.platform.gts.ids import (
    GTS_NAMESPACE,
    GTS_PREFIX,
    GTS_URI_PREFIX,
    GtsError,
    GtsId,
    GtsIdError,
    GtsSegment,
    covers,
    gts_uuid,
    id_to_uuid,
    is_valid_id,
    is_valid_pattern,
    match_id_pattern,
    match_pattern,
    parse_id,
    permits,
    strip_gts_uri,
    validate_id,
)
from hyperspot.platform.gts.query import GtsQueryError, Query, attr, parse_query, query, select
from hyperspot.platform.gts.store import GtsEntity, GtsStore, RefValidation

__all__ = [
    "GTS_NAMESPACE",
    "GTS_PREFIX",
    "GTS_URI_PREFIX",
    "Extraction",
    "GtsEntity",
    "GtsError",
    "GtsId",
    "GtsIdError",
    "GtsQueryError",
    "GtsSegment",
    "GtsStore",
    "Query",
    "RefValidation",
    "attr",
    "covers",
    "extract",
    "extract_id",
    "gts_uuid",
    "id_to_uuid",
    "is_valid_id",
    "is_valid_pattern",
    "match_id_pattern",
    "match_pattern",
    "parse_id",
    "parse_query",
    "permits",
    "query",
    "select",
    "strip_gts_uri",
    "validate_id",
]
