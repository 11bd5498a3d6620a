//! What a process tree costs, read from `/proc`: CPU seconds (user + system)
//! and resident memory, summed over the process and all its descendants
//! (nginx's master and worker, Envoy's and rotel's threads are all counted).

use std::{collections::HashMap, fs, sync::OnceLock};

/// CPU and memory of a process tree at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User + system CPU seconds since each process started.
    pub cpu_seconds: f64,
    /// Peak resident set (VmHWM), KiB, summed over the tree.
    pub peak_rss_kib: u64,
}

/// Clock ticks per second of the `/proc/PID/stat` times.
fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// The fields of `/proc/PID/stat` after the command name, which may itself
/// hold spaces and parentheses.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// `pid` and all its descendants.
pub fn tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            // After the name: state (0), ppid (1).
            if let Some(ppid) = stat_fields(pid).and_then(|f| f.get(1)?.parse::<u32>().ok()) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut all = vec![root];
    let mut i = 0;
    while i < all.len() {
        if let Some(c) = children.get(&all[i]) {
            all.extend(c);
        }
        i += 1;
    }
    all
}

/// CPU seconds of one process (all its threads).
fn cpu_seconds(pid: u32) -> f64 {
    // After the name, utime and stime are fields 14 and 15 of stat(5),
    // so indexes 11 and 12 here.
    let Some(f) = stat_fields(pid) else {
        return 0.0;
    };
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / ticks_per_second()
}

fn peak_rss_kib(pid: u32) -> u64 {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The usage of `root`'s whole tree now.
pub fn usage(root: u32) -> Usage {
    tree(root).into_iter().fold(Usage::default(), |mut u, pid| {
        u.cpu_seconds += cpu_seconds(pid);
        u.peak_rss_kib += peak_rss_kib(pid);
        u
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_has_cpu_time_and_memory() {
        let me = std::process::id();
        // Burn a little CPU so the tick counter moves.
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed().as_millis() < 50 {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        let u = usage(me);
        assert!(u.cpu_seconds > 0.0);
        assert!(u.peak_rss_kib > 0);
        assert!(tree(me).contains(&me));
    }

    #[test]
    fn children_are_part_of_the_tree() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let found = tree(std::process::id()).contains(&child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(found);
    }
}
