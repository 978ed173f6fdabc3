//! A real S3-compatible server on loopback for tests: moto's `moto_server`
//! (`pip install 'moto[server]'`; `.ci/run` installs it), one per test.
//!
//! When it cannot be started the test fails, saying how to install it: a missing
//! tool never lets a test pass silently.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct S3Server {
    child: Child,
    pub endpoint: String,
}

impl S3Server {
    /// Starts `moto_server` on a free loopback port; fails the test, saying how
    /// to install it, when it cannot.
    ///
    /// A port found free can be taken by a parallel test before moto binds it;
    /// so the server counts as up only when its own log says it is listening,
    /// and another port is tried when it could not bind.
    pub fn start() -> S3Server {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port");
            if let Some(server) = S3Server::start_on(port) {
                return server;
            }
        }
        panic!("moto_server could not bind a port in 5 tries");
    }

    fn start_on(port: u16) -> Option<S3Server> {
        use std::io::BufRead;
        let spawned = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = spawned.unwrap_or_else(|e| {
            panic!(
                "S3 TESTS CANNOT RUN: cannot start moto_server ({e}); install it with \
                 `pip install 'moto[server]'`"
            )
        });
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads moto's log to the end (so its pipe never fills), reporting
        // whether it is listening.
        std::thread::spawn(move || {
            let mut told = false;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !told && line.contains("Running on") {
                    told = true;
                    let _ = tx.send(true);
                }
            }
            if !told {
                let _ = tx.send(false);
            }
        });
        let mut server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(true) => {}
            Ok(false) => return None, // exited: the port was taken
            Err(_) => panic!("moto_server did not come up on port {port} in 60 s"),
        }
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

    /// Writes an object directly, with its SHA-256 checksum sent as the AWS
    /// SDKs send it (`x-amz-sdk-checksum-algorithm` naming the algorithm,
    /// which moto needs to keep it; R2 and S3 keep the
    /// `x-amz-checksum-sha256` of any PUT): a HEAD with
    /// `x-amz-checksum-mode: ENABLED` then returns it.
    pub fn put_raw_with_sha256(&self, bucket: &str, key: &str, body: Vec<u8>) {
        let headers = [("x-amz-sdk-checksum-algorithm", "SHA256".to_owned())];
        self.put_with_headers(bucket, key, body, &headers, true);
    }

    /// Writes an object as today's AWS SDKs do by default (boto3 1.36+,
    /// aws-sdk-rust): with a CRC32 checksum, which the server keeps, and no
    /// SHA-256.
    pub fn put_raw_with_crc32(&self, bucket: &str, key: &str, body: Vec<u8>) {
        use base64::Engine;
        let mut crc = flate2::Crc::new();
        crc.update(&body);
        let crc32 = base64::engine::general_purpose::STANDARD.encode(crc.sum().to_be_bytes());
        let headers = [
            ("x-amz-sdk-checksum-algorithm", "CRC32".to_owned()),
            ("x-amz-checksum-crc32", crc32),
        ];
        self.put_with_headers(bucket, key, body, &headers, false);
    }

    /// One PUT with extra headers (and object_store's SHA-256 checksum when
    /// `sha256`).
    fn put_with_headers(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        extra: &[(&'static str, String)],
        sha256: bool,
    ) {
        use object_store::ObjectStoreExt;
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in extra {
            headers.insert(
                *name,
                reqwest::header::HeaderValue::from_str(value).expect("a header value"),
            );
        }
        let mut builder = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test-secret")
            // Client options first: they replace `allow_http` too.
            .with_client_options(object_store::ClientOptions::new().with_default_headers(headers))
            .with_allow_http(true);
        if sha256 {
            builder = builder.with_checksum_algorithm(object_store::aws::Checksum::SHA256);
        }
        let store = builder.build().expect("client");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
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
