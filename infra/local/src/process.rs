//! Child processes of the local stack, each logging to its own file.
//!
//! Children are spawned from one long-lived thread with `PR_SET_PDEATHSIG`, so the kernel
//! ends them when the process that started them ends — a test binary that exits or panics,
//! or `make dev` killed hard — and no DynamoDB Local or anvil outlives its run.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// The spawner thread never exits: the death signal fires when the *thread* that forked a
/// child ends, so children must not be forked from short-lived (test) threads.
fn spawner() -> &'static mpsc::Sender<SpawnRequest> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("local-stack-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("spawner thread starts");
        tx
    })
}

/// A running child process.
#[derive(Debug)]
pub struct Service {
    pub name: String,
    pub log: PathBuf,
    child: Child,
}

impl Service {
    /// Starts `command` with stdout and stderr appended to `<log_dir>/<name>.log`.
    pub fn spawn(name: &str, command: Command, log_dir: &Path) -> anyhow::Result<Self> {
        Self::spawn_logging_to(name, command, &log_dir.join(format!("{name}.log")))
    }

    /// Starts `command` with stdout and stderr appended to `log` (several processes may share
    /// one log: every write appends).
    pub fn spawn_logging_to(name: &str, mut command: Command, log: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let log = log.to_path_buf();
        let out = File::options().create(true).append(true).open(&log)?;
        command
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null());
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent; this runs
        // between fork and exec as `pre_exec` requires.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let (tx, rx) = mpsc::channel();
        spawner()
            .send((command, tx))
            .context("spawner thread is gone")?;
        let child = rx
            .recv()
            .context("spawner thread is gone")?
            .with_context(|| format!("starting {name}"))?;
        Ok(Self {
            name: name.to_string(),
            log,
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Fails with the end of its log if the process has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!(
                "{} exited with {status}; last log lines:\n{}",
                self.name,
                self.log_tail(30)
            );
        }
        Ok(())
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGKILL: the process gets no chance to clean up (fault tests).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if !self.is_running() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if !self.is_running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

/// A TCP port free at the time of asking.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
