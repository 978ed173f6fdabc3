//! A real S3-compatible server on loopback for tests: moto's `moto_server`
//! (`pip install 'moto[server]'`; `.ci/run` installs it), one per test.
//!
//! When it cannot be started the test says so loudly and is skipped — except
//! under CI (`CI` set), where that is a failure.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct S3Server {
    child: Child,
    pub endpoint: String,
}

impl S3Server {
    /// Starts `moto_server` on a free loopback port, or explains why not.
    pub fn start() -> Option<S3Server> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let spawned = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let msg = format!(
                    "S3 TESTS SKIPPED: cannot start moto_server ({e}); install it with \
                     `pip install 'moto[server]'`"
                );
                assert!(std::env::var_os("CI").is_none(), "{msg}");
                eprintln!("\n!!!!! {msg}\n");
                return None;
            }
        };
        let mut server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || server.child.try_wait().ok().flatten().is_some() {
                panic!("moto_server did not come up on port {port}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(server)
    }

    /// Creates a bucket (moto accepts unsigned requests).
    pub fn create_bucket(&self, name: &str) {
        let status = reqwest::blocking::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .expect("create bucket")
            .status();
        assert!(status.is_success(), "create bucket: {status}");
    }

    /// Multipart uploads started and neither completed nor aborted.
    pub fn multipart_uploads(&self, bucket: &str) -> usize {
        let body = reqwest::blocking::Client::new()
            .get(format!("{}/{bucket}?uploads", self.endpoint))
            .send()
            .expect("list multipart uploads")
            .text()
            .expect("body");
        assert!(
            body.contains("ListMultipartUploadsResult"),
            "unexpected answer: {body}"
        );
        body.matches("<Upload>").count()
    }

    fn raw(&self, bucket: &str) -> (object_store::aws::AmazonS3, tokio::runtime::Runtime) {
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test-secret")
            .with_allow_http(true)
            .build()
            .expect("raw client");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        (store, rt)
    }

    /// Writes an object directly, bypassing materia.
    pub fn put_raw(&self, bucket: &str, key: &str, body: Vec<u8>) {
        use object_store::ObjectStoreExt;
        let (store, rt) = self.raw(bucket);
        rt.block_on(store.put(&object_store::path::Path::from(key), body.into()))
            .expect("put object");
    }

    /// Reads an object directly.
    pub fn get_raw(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        use object_store::ObjectStoreExt;
        let (store, rt) = self.raw(bucket);
        rt.block_on(async {
            store
                .get(&object_store::path::Path::from(key))
                .await?
                .bytes()
                .await
        })
        .ok()
        .map(|b| b.to_vec())
    }

    /// Every object key under `prefix`, sorted.
    pub fn list_raw(&self, bucket: &str, prefix: &str) -> Vec<String> {
        use futures::TryStreamExt;
        use object_store::ObjectStore;
        let (store, rt) = self.raw(bucket);
        let mut keys: Vec<String> = rt
            .block_on(
                store
                    .list(Some(&object_store::path::Path::from(prefix)))
                    .map_ok(|m| m.location.to_string())
                    .try_collect(),
            )
            .expect("list");
        keys.sort();
        keys
    }

    /// Deletes an object directly.
    pub fn delete_raw(&self, bucket: &str, key: &str) {
        use object_store::ObjectStoreExt;
        let (store, rt) = self.raw(bucket);
        rt.block_on(store.delete(&object_store::path::Path::from(key)))
            .expect("delete object");
    }

    /// Stops the server (its data is gone).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
