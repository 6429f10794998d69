//! A throwaway tansu broker for the Kafka tests and benchmarks (not used by `logveil` itself).
//!
//! tansu is an Apache-Kafka-compatible broker (AGPL): it runs as a separate process, installed
//! by `tests/install-tansu.sh`, never linked. Each [`Broker`] gets its own data directory
//! (sqlite storage) and a free loopback port, and is killed when dropped.

// Shared by the Kafka tests and the Kafka benchmark, each of which uses part of it.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// The tansu binary: `$TANSU`, else `~/.cargo/bin/tansu`, else `tansu` on the PATH.
pub fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TANSU") {
        return Some(p.into());
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let bin = home.join("bin/tansu");
    if bin.exists() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("tansu"))
            .find(|p| p.exists())
    })
}

/// A running tansu broker.
pub struct Broker {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    /// Starts a broker in a fresh data directory on a free loopback port.
    pub fn start() -> Result<Broker> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!("logveil-tansu-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut b = Broker {
            dir,
            port,
            child: None,
        };
        b.spawn()?;
        Ok(b)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn spawn(&mut self) -> Result<()> {
        let bin = binary().context(
            "tansu is not installed: run `bash tests/install-tansu.sh` (tests/run.sh does it)",
        )?;
        let url = format!("tcp://{}", self.addr());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("broker.log"))?;
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite:///tansu.db"])
            .current_dir(&self.dir)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start tansu")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(self.addr()).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "tansu did not listen within 20 s (see {}/broker.log)",
                    self.dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // tansu 0.6.0's schema lacks this index: reading records with headers is quadratic
        // without it.
        let st = Command::new("python3")
            .arg("-c")
            .arg(
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1], timeout=30); \
                 c.execute('create index if not exists header_topition_offset_id on header (topition, offset_id)'); c.commit()",
            )
            .arg(self.dir.join("tansu.db"))
            .status()
            .context("python3 (to index tansu's sqlite database)")?;
        if !st.success() {
            bail!("cannot index tansu's header table");
        }
        Ok(())
    }

    /// kill -9, wait `down_for`, start again on the same port and data.
    pub fn restart(&mut self, down_for: Duration) -> Result<()> {
        self.kill();
        std::thread::sleep(down_for);
        self.spawn()
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Creates a topic and waits until the metadata shows all its partitions.
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .create()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let r = rt.block_on(admin.create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))?;
        if let Some(Err((t, e))) = r.into_iter().next() {
            bail!("create topic {t}: {e}");
        }
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .create()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(md) = c.fetch_metadata(Some(name), Duration::from_secs(5)) {
                if md.topics().iter().any(|t| {
                    t.name() == name
                        && t.error().is_none()
                        && t.partitions().len() == partitions as usize
                }) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("topic {name} not in the metadata within 20 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
