//! [`RecordingDir`]: a recording directory opened for reading.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::manifest::{FormatError, Manifest};
use crate::records::{RecordError, RecordKind, RecordReader};

/// A recording directory whose manifest was read and checked, so every file name in it is a
/// plain name inside the directory (see [`crate::manifest`]). Its paths come only from that
/// manifest, which it does not let change.
#[derive(Clone, Debug)]
pub struct RecordingDir {
    dir: PathBuf,
    manifest: Manifest,
}

impl RecordingDir {
    /// Reads and checks `dir/manifest.json`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, FormatError> {
        let dir = dir.as_ref().to_path_buf();
        let manifest = Manifest::read(&dir)?;
        Ok(Self { dir, manifest })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The path of the events file.
    pub fn events_path(&self) -> PathBuf {
        self.dir.join(&self.manifest.events_file)
    }

    /// The path of the record file of the manifest's track number `index`, `None` past the
    /// last track.
    pub fn track_path(&self, index: usize) -> Option<PathBuf> {
        let track = self.manifest.tracks.get(index)?;
        Some(self.dir.join(&track.file))
    }

    /// Opens the events file.
    pub fn open_events(&self) -> Result<RecordReader<BufReader<File>>, RecordError> {
        RecordReader::open(self.events_path(), RecordKind::Events)
    }

    /// Opens the record file of the manifest's track number `index`, `None` past the last
    /// track.
    pub fn open_track(
        &self,
        index: usize,
    ) -> Option<Result<RecordReader<BufReader<File>>, RecordError>> {
        let path = self.track_path(index)?;
        Some(RecordReader::open(path, RecordKind::Frames))
    }
}
