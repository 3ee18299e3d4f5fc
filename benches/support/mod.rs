//! What the benches share: where the real traces are.

use std::path::PathBuf;

/// `rel` under the shared data directory: `FORESIGHT_DATA_DIR`, as for the
/// tests and notebooks, else `shared/data` beside the repository.
pub fn data_file(rel: &str) -> PathBuf {
    std::env::var("FORESIGHT_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
        .join(rel)
}
