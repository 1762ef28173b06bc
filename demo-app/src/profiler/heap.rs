//! The `dhat-heap` build: dhat's heap profiler over the whole run (the allocator itself is installed in `main`).

use std::path::{Path, PathBuf};

/// The file dhat writes, in the profile directory.
pub const FILE_NAME: &str = "dhat-heap.json";

pub(super) struct Heap {
    profiler: dhat::Profiler,
    path: PathBuf,
}

impl Heap {
    pub(super) fn start(dir: &Path) -> Heap {
        let path = dir.join(FILE_NAME);
        let profiler = dhat::Profiler::builder()
            .file_name(&path)
            // dhat's default of 10 frames often stops inside alloc/raw_vec before reaching our code.
            .trim_backtraces(Some(30))
            .build();
        Heap { profiler, path }
    }

    /// Writes `dhat-heap.json` (dhat writes it when its profiler is dropped).
    pub(super) fn finish(self) -> PathBuf {
        drop(self.profiler);
        self.path
    }
}
