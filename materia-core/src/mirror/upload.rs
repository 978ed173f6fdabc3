//! One landed file into the bucket: a conditional PUT, or a multipart upload
//! from [`MirrorOptions::multipart_threshold`](super::MirrorOptions::multipart_threshold);
//! either way checked against the SHA-256 the ledger recorded before it is
//! complete, and sent with a SHA-256 checksum the server checks.

use std::path::Path as FsPath;

use futures::{StreamExt, TryStreamExt};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, MultipartId, ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions,
    PutOptions, PutPayload,
};
use sha2::Digest;
use tokio::io::AsyncReadExt;

use super::record::{Pending, Record};
use super::{META_LANDED_AT, META_SHA256, Mirror, Upload};
use crate::error::{Error, IoContext, Result};
use crate::landing::{Entry, Release, Sha256Digest};

impl Mirror {
    /// Uploads one file unless the bucket has it: [`Upload::Uploaded`], or
    /// what comparing it with the object there found.
    pub(super) async fn upload(
        &self,
        record: &Record,
        entry: &Entry,
        path: &FsPath,
        location: &Path,
        size: u64,
    ) -> Result<Upload> {
        let release = entry.release.as_ref();
        if size >= self.options.multipart_threshold {
            return self
                .upload_multipart(record, release, path, location, size)
                .await;
        }
        let _memory = self.reserve(size).await?;
        let bytes = read_regular(path).await?;
        check_hash(path, release, Sha256Digest::of(&bytes))?;
        let options = PutOptions {
            mode: PutMode::Create,
            attributes: object_attributes(release),
            ..PutOptions::default()
        };
        let put = self
            .bucket
            .s3
            .put_opts(location, PutPayload::from(bytes), options);
        match put.await {
            Ok(_) => Ok(Upload::Uploaded(size)),
            // Already there — possibly our own earlier attempt that the client
            // retried: compare before calling it a conflict.
            Err(object_store::Error::AlreadyExists { .. }) => self.compare(path, location).await,
            Err(e) => Err(self.fail_at(location, e)),
        }
    }

    async fn upload_multipart(
        &self,
        record: &Record,
        release: Option<&Release>,
        path: &FsPath,
        location: &Path,
        size: u64,
    ) -> Result<Upload> {
        // A multipart completion is not a conditional create here: check first.
        match self.bucket.s3.head(location).await {
            Ok(_) => return self.compare(path, location).await,
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.fail_at(location, e)),
        }
        let id = self.begin_multipart(record, release, location).await?;
        let uploaded = async {
            let parts = self.send_parts(release, path, location, &id, size).await?;
            self.bucket
                .s3
                .complete_multipart(location, &id, parts)
                .await
                .map_err(|e| self.fail_at(location, e))
        }
        .await;
        // A failed upload is aborted now; if the abort fails too, its record
        // stays and the next push aborts it.
        let settled =
            uploaded.is_ok() || self.bucket.s3.abort_multipart(location, &id).await.is_ok();
        if settled {
            record.remove_pending(location.as_ref())?;
        }
        uploaded.map(|_| Upload::Uploaded(size))
    }

    /// Starts a multipart upload and records it as pending (so that a killed
    /// run's is aborted by the next push).
    async fn begin_multipart(
        &self,
        record: &Record,
        release: Option<&Release>,
        location: &Path,
    ) -> Result<MultipartId> {
        let options = PutMultipartOptions {
            attributes: object_attributes(release),
            ..PutMultipartOptions::default()
        };
        let id = self
            .bucket
            .s3
            .create_multipart_opts(location, options)
            .await
            .map_err(|e| self.fail_at(location, e))?;
        let pending = Pending {
            location: location.to_string(),
            upload_id: id.clone(),
        };
        if let Err(e) = record.add_pending(&pending) {
            // Unrecorded, the upload could be orphaned: abort it now. (Only a
            // power cut between the create and this record's fsync can still
            // orphan one: the bucket's lifecycle rule for incomplete uploads
            // is the backstop, see the README.)
            let _ = self.bucket.s3.abort_multipart(location, &id).await;
            return Err(e);
        }
        Ok(id)
    }

    /// Sends the file's parts, within the memory budget, and checks the
    /// whole file's SHA-256 against the ledger before the upload may be
    /// completed: the parts' ids, in order.
    async fn send_parts(
        &self,
        release: Option<&Release>,
        path: &FsPath,
        location: &Path,
        id: &MultipartId,
        size: u64,
    ) -> Result<Vec<PartId>> {
        let part_size = self.options.part_size;
        let file = tokio::sync::Mutex::new(open_regular(path).await?);
        let hasher = std::sync::Mutex::new(sha2::Sha256::new());
        // Parts are read in order (and hashed as they are read), then sent
        // concurrently: the whole file is hashed in the same pass.
        let ids = futures::stream::iter(0..size.div_ceil(part_size))
            .then(|i| {
                let (file, hasher) = (&file, &hasher);
                async move {
                    let len = part_size.min(size - i * part_size);
                    let memory = self.reserve(len).await?;
                    let mut buf = vec![0; len as usize];
                    file.lock().await.read_exact(&mut buf).await.at(path)?;
                    hasher
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .update(&buf);
                    Ok::<_, Error>((i, buf, memory))
                }
            })
            .map_ok(|(i, buf, memory)| async move {
                let payload = PutPayload::from(buf);
                let part = self.bucket.s3.put_part(location, id, i as usize, payload);
                let part = part.await.map_err(|e| {
                    self.bucket
                        .failed(format_args!("{location} part {}: ", i + 1), e)
                });
                drop(memory);
                part
            })
            .try_buffered(self.options.concurrency.max(1))
            .try_collect::<Vec<_>>()
            .await?;
        let digest = hasher
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        check_hash(path, release, Sha256Digest::from_hasher(digest))?;
        Ok(ids)
    }
}

/// `application/gzip` and no Content-Encoding (R2 would otherwise hand back
/// the decompressed bytes — rclone issue 8137), and the file's hash and
/// landing time as user metadata.
fn object_attributes(release: Option<&Release>) -> Attributes {
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, "application/gzip".into());
    if let Some(r) = release {
        attributes.insert(
            Attribute::Metadata(META_SHA256.into()),
            r.file_sha256.to_string().into(),
        );
        attributes.insert(
            Attribute::Metadata(META_LANDED_AT.into()),
            r.landed_at.to_string().into(),
        );
    }
    attributes
}

/// Refuses to upload a file whose bytes are not what the ledger recorded: the
/// backup must never hold only a corrupt copy.
fn check_hash(path: &FsPath, release: Option<&Release>, read: Sha256Digest) -> Result<()> {
    match release {
        Some(r) if r.file_sha256 != read => Err(Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "its SHA-256 is {read}, {} was landed; not uploading it (run `materia verify`)",
                r.file_sha256
            ),
        }),
        _ => Ok(()),
    }
}

/// Opens a landed file for reading, refusing a symlink or anything but a
/// regular file (a FIFO would hang the push).
async fn open_regular(path: &FsPath) -> Result<tokio::fs::File> {
    let file = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .await
        .at(path)?;
    let meta = file.metadata().await.at(path)?;
    if !meta.is_file() {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    Ok(file)
}

/// Reads a whole landed file (see [`open_regular`]).
async fn read_regular(path: &FsPath) -> Result<Vec<u8>> {
    let mut file = open_regular(path).await?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).await.at(path)?;
    Ok(bytes)
}
