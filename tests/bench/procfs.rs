//! The poller's footprint from `/proc`: resident memory, CPU time and page faults of a child
//! process.

use anyhow::Context;

/// Every process as (pid, comm, parent pid), read from `/proc`.
fn processes() -> Vec<(u32, String, u32)> {
    let mut found = vec![];
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (comm, rest) = split_stat(&stat);
        if let Some(ppid) = rest.get(1).and_then(|p| p.parse::<u32>().ok()) {
            found.push((pid, comm.to_string(), ppid));
        }
    }
    found
}

/// The pid of this process's child named `name` (the stack spawns the poller directly).
pub fn child_pid(name: &str) -> anyhow::Result<u32> {
    let me = std::process::id();
    processes()
        .into_iter()
        .find(|(_, comm, ppid)| comm == name && *ppid == me)
        .map(|(pid, _, _)| pid)
        .ok_or_else(|| anyhow::anyhow!("no child process named {name}"))
}

/// Every process named `name` anywhere below this one.
pub fn descendants_named(name: &str) -> Vec<u32> {
    let me = std::process::id();
    let all = processes();
    let parents: std::collections::HashMap<u32, u32> =
        all.iter().map(|(pid, _, ppid)| (*pid, *ppid)).collect();
    let below_me = |pid: u32| {
        let mut at = pid;
        for _ in 0..64 {
            match parents.get(&at) {
                Some(&parent) if parent == me => return true,
                Some(&parent) if parent > 1 => at = parent,
                _ => return false,
            }
        }
        false
    };
    all.iter()
        .filter(|(pid, comm, _)| comm == name && below_me(*pid))
        .map(|(pid, _, _)| *pid)
        .collect()
}

/// `(comm, fields after comm)`: comm is in parentheses and may itself contain spaces.
fn split_stat(stat: &str) -> (&str, Vec<&str>) {
    let open = stat.find('(').unwrap_or(0);
    let close = stat.rfind(')').unwrap_or(stat.len());
    let comm = stat.get(open + 1..close).unwrap_or("");
    let rest = stat
        .get(close + 1..)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    (comm, rest)
}

/// (VmRSS, VmHWM) in MiB.
pub fn memory_mib(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<f64> {
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .with_context(|| format!("{name} in /proc/{pid}/status"))?
            .parse()?;
        Ok(kb / 1024.0)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// The process's page faults so far, minor and major (`minflt` and `majflt` of
/// `/proc/{pid}/stat`): each a page the kernel mapped on first touch, zeroing it first when
/// it is fresh memory.
pub fn page_faults(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let (_, fields) = split_stat(&stat);
    // After the command: state, ppid, pgrp, session, tty_nr, tpgid, flags, minflt, cminflt,
    // majflt.
    let field = |at: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(at)
            .with_context(|| format!("field {at} of /proc/{pid}/stat"))?
            .parse()?)
    };
    Ok(field(7)? + field(9)?)
}

/// User plus system CPU seconds the process has used, every thread's (those gone too), to the
/// nanosecond: the kernel's per-process CPU clock. `/proc/{pid}/stat` counts in ticks of 10 ms,
/// coarser than what one session change costs the poller over a whole churn window.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
    let mut clock: libc::clockid_t = 0;
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: each call only writes the plain value it is handed a pointer to, which lives on
    // this stack frame for the whole call.
    #[allow(unsafe_code)]
    let found = unsafe { libc::clock_getcpuclockid(pid, &mut clock) };
    if found != 0 {
        anyhow::bail!(
            "the CPU clock of process {pid}: {}",
            std::io::Error::from_raw_os_error(found)
        );
    }
    // SAFETY: as above.
    #[allow(unsafe_code)]
    let read = unsafe { libc::clock_gettime(clock, &mut now) };
    if read != 0 {
        anyhow::bail!(
            "the CPU clock of process {pid}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(now.tv_sec as f64 + now.tv_nsec as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_process() {
        let me = std::process::id();
        let (rss, hwm) = memory_mib(me).unwrap();
        assert!(rss > 0.0 && hwm >= rss);
        // The clock moves with work done, finer than a tick of `/proc/{pid}/stat`.
        let before = cpu_seconds(me).unwrap();
        let mut spin = 0u64;
        while cpu_seconds(me).unwrap() - before < 0.002 {
            spin = spin.wrapping_add(1);
        }
        assert!(spin > 0);
        // Touching fresh memory faults its pages in.
        let faults = page_faults(me).unwrap();
        let fresh = std::hint::black_box(vec![1u8; 16 << 20]);
        assert!(page_faults(me).unwrap() > faults);
        drop(fresh);
        let (comm, rest) = split_stat("12 (a b) S 1 2");
        assert_eq!((comm, rest[1]), ("a b", "1"));
    }
}
