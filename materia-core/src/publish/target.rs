//! [`Target`]: the bucket prefix a publish writes to, and the few ways it
//! writes — create unless there, replace, move `latest.json` only if it is
//! still what was read.

use std::collections::{BTreeMap, BTreeSet};

use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::keys::manifest_key;
use super::manifest::Manifest;
use super::options::PublishOptions;
use crate::bucket::{Bucket, Operation, Stored};
use crate::error::{Error, IoContext, RemoteKind, Result};
use crate::landing::Sha256Digest;

/// Files this size or larger go up as multipart uploads, in 16 MiB parts.
const MULTIPART: u64 = 64 << 20;

/// The bucket and prefix, and a runtime to talk to them.
pub(super) struct Target {
    pub bucket: Bucket,
    /// Requests in flight at once.
    concurrency: usize,
}

impl Target {
    pub(super) fn connect(options: &PublishOptions) -> Result<Target> {
        Ok(Target {
            bucket: Bucket::connect(&options.bucket, Operation::Publish, MULTIPART)?,
            concurrency: options.concurrency.max(1),
        })
    }

    /// `s3://bucket/prefix`, as configured.
    pub(super) fn url(&self) -> &str {
        &self.bucket.url
    }

    /// Of `files` (path, SHA-256), those whose object is there and whose
    /// SHA-256 the server either keeps and is this one, or does not keep.
    pub(super) fn with_sha256(&self, files: Vec<(&str, Sha256Digest)>) -> Result<BTreeSet<String>> {
        use futures::StreamExt;
        let raw = &self.bucket.raw();
        let answers: Vec<_> = self.bucket.block_on(
            futures::stream::iter(files.into_iter().map(|(path, sha)| async move {
                let stored = raw.stored_sha256(self.key(path).as_ref()).await;
                (path, sha, stored)
            }))
            .buffer_unordered(self.concurrency)
            .collect(),
        );
        let mut out = BTreeSet::new();
        for (path, sha, stored) in answers {
            match stored.map_err(|reason| self.bucket.refuse(RemoteKind::Other, reason))? {
                Stored::Unknown => {}
                Stored::Sha256(stored) if stored == sha => {}
                Stored::Missing | Stored::Sha256(_) | Stored::Other => continue,
            }
            out.insert(path.to_owned());
        }
        Ok(out)
    }

    fn key(&self, path: &str) -> Key {
        Key::from_iter(self.bucket.prefix.parts().chain(Key::from(path).parts()))
    }

    fn fail(&self, what: &str, e: object_store::Error) -> Error {
        self.bucket.failed(format_args!("{what}: "), e)
    }

    /// `latest.json`'s version and bytes, if there is one.
    pub(super) fn read_latest(&self) -> Result<Option<(UpdateVersion, Vec<u8>)>> {
        let key = self.key("latest.json");
        self.bucket.block_on(async {
            match self.bucket.s3.get(&key).await {
                Ok(got) => {
                    let version = UpdateVersion {
                        e_tag: got.meta.e_tag.clone(),
                        version: got.meta.version.clone(),
                    };
                    let bytes = got
                        .bytes()
                        .await
                        .map_err(|e| self.fail("reading latest.json", e))?;
                    Ok(Some((version, bytes.to_vec())))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.fail("reading latest.json", e)),
            }
        })
    }

    /// Whether `latest.json` (`bytes`, read as `latest`) is what a publish to
    /// this prefix wrote: its prefix is this one, and it is byte for byte the
    /// manifest stored under its own content address. An edited `latest.json`
    /// is not, and is then rewritten by a full publish (never taken as "this
    /// build is already there").
    pub(super) fn is_intact(&self, latest: &Manifest, bytes: &[u8]) -> Result<bool> {
        if latest.prefix != self.url().trim_end_matches('/') || bytes != latest.to_bytes() {
            return Ok(false);
        }
        let path = manifest_key(latest);
        Ok(self.get(&path)?.is_some_and(|stored| stored == bytes))
    }

    /// The object at `path` under the prefix (`None`: there is none).
    pub(super) fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let key = self.key(path);
        let bytes = self.bucket.block_on(async {
            match self.bucket.s3.get(&key).await {
                Ok(got) => got.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        bytes
            .map(|b| b.map(|b| b.to_vec()))
            .map_err(|e| self.fail(path, e))
    }

    /// Every key under `{prefix}/{dir}`, relative to the prefix, and its size.
    pub(super) fn list(&self, dir: &str) -> Result<BTreeMap<String, u64>> {
        use futures::TryStreamExt;
        let under = self.key(dir);
        let strip = self.bucket.prefix.as_ref().len();
        self.bucket.block_on(async {
            let metas: Vec<_> = self
                .bucket
                .s3
                .list(Some(&under))
                .try_collect()
                .await
                .map_err(|e| self.fail(&format!("listing {dir}/"), e))?;
            Ok(metas
                .into_iter()
                .map(|m| {
                    let k = m.location.as_ref();
                    let relative = k.get(strip..).unwrap_or(k).trim_start_matches('/');
                    (relative.to_owned(), m.size)
                })
                .collect())
        })
    }

    /// Creates `path` from a local file unless it exists (then `false`), or
    /// with `replace` writes it whatever is there (a content-addressed file
    /// the bucket holds broken: the right bytes are the same whoever writes).
    pub(super) fn upload(
        &self,
        path: &str,
        local: &std::path::Path,
        bytes: u64,
        replace: bool,
    ) -> Result<bool> {
        if bytes >= MULTIPART {
            // A multipart upload cannot be a conditional create: the listing
            // said it is missing, and the content is the same whoever wins.
            return self.upload_multipart(path, local);
        }
        let data = std::fs::read(local).at(local)?;
        let mode = if replace {
            PutMode::Overwrite
        } else {
            PutMode::Create
        };
        self.put(path, data, mode)
    }

    /// Writes `path` from a local file in 16 MiB parts, 4 in flight.
    fn upload_multipart(&self, path: &str, local: &std::path::Path) -> Result<bool> {
        use tokio::io::AsyncReadExt;
        let key = self.key(path);
        self.bucket.block_on(async {
            let upload = self
                .bucket
                .s3
                .put_multipart(&key)
                .await
                .map_err(|e| self.fail(path, e))?;
            let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, 16 << 20);
            let mut file = tokio::fs::File::open(local).await.at(local)?;
            let mut buf = vec![0u8; 8 << 20];
            loop {
                let n = file.read(&mut buf).await.at(local)?;
                if n == 0 {
                    break;
                }
                writer
                    .wait_for_capacity(4)
                    .await
                    .map_err(|e| self.fail(path, e))?;
                writer.write(&buf[..n]);
            }
            writer.finish().await.map_err(|e| self.fail(path, e))?;
            Ok(true)
        })
    }

    /// Creates `path` with `data` unless it exists (then `false`).
    pub(super) fn put_new(&self, path: &str, data: Vec<u8>) -> Result<bool> {
        self.put(path, data, PutMode::Create)
    }

    /// Writes `path` with `data` in `mode`; `false` when a create found it
    /// there.
    fn put(&self, path: &str, data: Vec<u8>, mode: PutMode) -> Result<bool> {
        let key = self.key(path);
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        self.bucket.block_on(async {
            let put = self.bucket.s3.put_opts(&key, PutPayload::from(data), opts);
            match put.await {
                Ok(_) => Ok(true),
                Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
                Err(e) => Err(self.fail(path, e)),
            }
        })
    }

    /// Writes `latest.json` only if it is still `previous` (or still absent).
    pub(super) fn move_latest(&self, previous: Option<UpdateVersion>, bytes: &[u8]) -> Result<()> {
        let key = self.key("latest.json");
        let mode = match previous {
            Some(v) => PutMode::Update(v),
            None => PutMode::Create,
        };
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        self.bucket.block_on(async {
            let payload = PutPayload::from(bytes.to_vec());
            match self.bucket.s3.put_opts(&key, payload, opts).await {
                Ok(_) => Ok(()),
                Err(
                    e @ (object_store::Error::Precondition { .. }
                    | object_store::Error::AlreadyExists { .. }),
                ) => Err(Operation::Publish.error(
                    self.url(),
                    RemoteKind::Conflict,
                    "latest.json moved since this publish read it (another publish won): \
                     nothing is lost, publish again",
                    Some(Box::new(e)),
                )),
                Err(e) => Err(self.fail("moving latest.json", e)),
            }
        })
    }

    /// Removes `path` under the prefix (already gone is fine).
    pub(super) fn delete(&self, path: &str) -> Result<()> {
        let key = self.key(path);
        self.bucket.block_on(async {
            match self.bucket.s3.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(self.fail(path, e)),
            }
        })
    }
}
