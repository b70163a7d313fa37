//! A full disk under a real `vectron dev`: the worker's data on a small tmpfs, filled up
//! while a shard holds acknowledged points. A checkpoint then fails with its error
//! reported, writes fail without being acknowledged, and once space returns writes
//! resume on their own, with every acknowledged point there, also after a restart.
//!
//! Mounting a tmpfs needs root (CAP_SYS_ADMIN); where that is refused the test says so
//! on stderr in capitals and does not pass silently for a test that ran.

use std::ffi::CString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tonic::transport::Channel;
use vectron_proto::core::v1 as core;
use vectron_proto::core::v1::core_service_client::CoreServiceClient;

use crate::harness::{try_json, vector};
use crate::support::{self, Http, Process};

const COLLECTION: &str = "full";

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, bytes: u64) -> std::io::Result<Tmpfs> {
        std::fs::create_dir_all(at)?;
        let target = CString::new(at.as_os_str().as_encoded_bytes()).unwrap();
        let options = CString::new(format!("size={bytes}")).unwrap();
        // SAFETY: every pointer is a NUL-terminated string that outlives the call.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let target = CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path; MNT_DETACH lets the kernel finish once the
        // last user is gone.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

fn start(data: &Path) -> Process {
    crate::harness::dev(data, 1, &[])
}

/// Upserts points `from..to` (with 2 KB payloads); whether they were acknowledged.
async fn upsert(addr: &str, from: usize, to: usize) -> Option<(u16, Value)> {
    let points: Vec<Value> = (from..to)
        .map(|i| json!({"id": format!("f{i}"), "vector": vector(i), "payload": {"pad": "p".repeat(2_000)}}))
        .collect();
    try_json(
        addr,
        "PUT",
        &format!("/v1/collections/{COLLECTION}/points"),
        &json!({ "points": points }),
    )
    .await
}

async fn count_present(http: &Http, to: usize) -> usize {
    let ids: Vec<String> = (0..to).map(|i| format!("f{i}")).collect();
    let (status, body) = http
        .json(
            "POST",
            &format!("/v1/collections/{COLLECTION}/points/get"),
            Some(json!({"ids": ids, "with_vector": false, "with_payload": false})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["points"].as_array().unwrap().len()
}

async fn core_and_shard(http: &Http) -> (CoreServiceClient<Channel>, core::ShardRef) {
    let (_, info) = http
        .json("GET", &format!("/v1/collections/{COLLECTION}"), None)
        .await;
    let replica = &info["shards"][0]["replicas"][0];
    let channel = Channel::from_shared(format!("http://{}", replica["address"].as_str().unwrap()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let shard = core::ShardRef {
        collection: COLLECTION.into(),
        shard_id: 0,
        epoch: replica["epoch"].as_u64().unwrap(),
    };
    (CoreServiceClient::new(channel), shard)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_checkpoints_and_writes_cleanly_and_writes_resume_with_space() {
    let dir = support::tempdir();
    let disk = match Tmpfs::mount(&dir.path().join("disk"), 48 << 20) {
        Ok(disk) => disk,
        Err(e) => {
            eprintln!(
                "\n*** THE DISK-FULL TEST DID NOT RUN: mounting a tmpfs failed ({e}); it needs root ***\n"
            );
            return;
        }
    };
    // Only the worker's data on the small disk: the control plane keeps its own.
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::os::unix::fs::symlink(&disk.0, data.join("worker")).unwrap();

    let dev = start(&data);
    let addr = support::http_addr(&dev);
    let http = Http::new(&addr);
    let (status, body) = http
        .json(
            "POST",
            "/v1/collections",
            Some(json!({"name": COLLECTION, "dimension": 4, "metric": "cosine", "shard_count": 1})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut acked = 0;
    for batch in 0..4 {
        let (status, body) = upsert(&addr, batch * 1_000, (batch + 1) * 1_000)
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        acked = (batch + 1) * 1_000;
    }

    // Fill the disk.
    let filler = disk.0.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 1 << 20];
    while file.write_all(&chunk).is_ok() {}
    drop(file);

    // A checkpoint fails, and says why.
    let (mut core, shard) = core_and_shard(&http).await;
    let failed = core
        .checkpoint(core::CheckpointRequest {
            shard: Some(shard.clone()),
        })
        .await
        .expect_err("a checkpoint on a full disk fails");
    assert!(
        failed.message().contains("No space left on device"),
        "{failed:?}"
    );
    // The failed checkpoint did not stop the shard: it reads as before.
    assert_eq!(count_present(&http, acked).await, acked);
    // A write that does not wait for durability is taken (that is what it asks for),
    // but once the log has failed under it, the next one is refused: nothing more is
    // acknowledged on top of a log that lost a write.
    let path = format!("/v1/collections/{COLLECTION}/points");
    // 100 KB each: more than the free end of the log's last page.
    let unsynced = |id: &str| {
        let points: Vec<Value> = (0..50)
            .map(|i| json!({"id": format!("{id}-{i}"), "vector": vector(i), "payload": {"pad": "p".repeat(2_000)}}))
            .collect();
        json!({ "points": points, "wait": false })
    };
    let first = try_json(&addr, "PUT", &path, &unsynced("nw1")).await;
    assert!(matches!(first, Some((200, _))), "{first:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = try_json(&addr, "PUT", &path, &unsynced("nw2")).await;
    assert!(
        second.as_ref().is_some_and(|(status, _)| *status >= 500),
        "a write after the log failed: {second:?}"
    );
    // A write fails and is not acknowledged.
    let refused = upsert(&addr, acked, acked + 1_000).await;
    assert!(
        refused.as_ref().is_some_and(|(status, _)| *status >= 500),
        "a write on a full disk: {refused:?}"
    );

    // Space returns: writes resume without a restart (the worker reopens the shard).
    std::fs::remove_file(&filler).unwrap();
    let started = Instant::now();
    loop {
        match upsert(&addr, acked, acked + 1_000).await {
            Some((200, _)) => break,
            other => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "writes did not resume: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    acked += 1_000;
    assert_eq!(count_present(&http, acked).await, acked);
    let (mut core, shard) = core_and_shard(&http).await;
    core.checkpoint(core::CheckpointRequest { shard: Some(shard) })
        .await
        .expect("a checkpoint with space");

    dev.terminate();
    let dev = start(&data);
    let http = Http::new(&support::http_addr(&dev));
    assert_eq!(count_present(&http, acked).await, acked);
    dev.terminate();
}
