//! Which cores the embedded server and the load run on (`--server-cores 0 --client-cores 1`):
//! core lists as written (`0`, `0-3`, `0,2`), the defaults from the number of cores, and
//! pinning a thread or a child process to a set of cores (Linux; elsewhere nothing is pinned).

/// Parses `0`, `0-3`, `0,2,4-5` into core numbers (sorted, no duplicates).
pub fn parse_core_list(text: &str) -> Result<Vec<usize>, String> {
    let invalid = || format!("invalid core list '{text}' (examples: 0, 0-3, 0,2)");
    let mut cores = Vec::new();
    for part in text.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(invalid());
        }
        let (first, last) = match part.split_once('-') {
            Some((first, last)) => (first.trim(), last.trim()),
            None => (part, part),
        };
        let first: usize = first.parse().map_err(|_| invalid())?;
        let last: usize = last.parse().map_err(|_| invalid())?;
        if first > last || last >= 4096 {
            return Err(invalid());
        }
        cores.extend(first..=last);
    }
    cores.sort_unstable();
    cores.dedup();
    Ok(cores)
}

/// The machine's online cores (not narrowed by this thread's pinning).
pub fn available_cores() -> usize {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sysconf reads a system constant and has no other effect.
        let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        if let Ok(online) = usize::try_from(online) {
            if online > 0 {
                return online;
            }
        }
    }
    std::thread::available_parallelism().map_or(1, |cores| cores.get())
}

/// The default split of `cores` cores: the first half (rounded down, at least one) for the
/// server, the rest for the load; one core is shared (`None`: no pinning).
pub fn default_split(cores: usize) -> Option<(Vec<usize>, Vec<usize>)> {
    if cores < 2 {
        return None;
    }
    let server = (cores / 2).max(1);
    Some(((0..server).collect(), (server..cores).collect()))
}

/// Pins the calling thread to `cores`; false when it could not (not Linux, or refused).
pub fn pin_current_thread(cores: &[usize]) -> bool {
    pin(0, cores)
}

/// Pins process (or thread) `pid` (0: the caller) to `cores`.
#[cfg(target_os = "linux")]
pub fn pin(pid: i32, cores: &[usize]) -> bool {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET only writes inside the set for
    // core numbers below CPU_SETSIZE, which `parse_core_list` bounds (< 4096 = 64 × 64) and
    // the check below enforces; sched_setaffinity reads the set it is given for its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for core in cores {
            if *core >= libc::CPU_SETSIZE as usize {
                return false;
            }
            libc::CPU_SET(*core, &mut set);
        }
        libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

#[cfg(not(target_os = "linux"))]
pub fn pin(_pid: i32, _cores: &[usize]) -> bool {
    false
}

/// A core list as written (`0-1,3`).
pub fn describe(cores: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut index = 0;
    while index < cores.len() {
        let first = cores[index];
        let mut last = first;
        while index + 1 < cores.len() && cores[index + 1] == last + 1 {
            index += 1;
            last = cores[index];
        }
        parts.push(if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        });
        index += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_lists_are_read_and_written_back() {
        assert_eq!(parse_core_list("0"), Ok(vec![0]));
        assert_eq!(parse_core_list("3,0-1, 1"), Ok(vec![0, 1, 3]));
        for bad in ["", "a", "2-1", "0,,1", "-1", "5000"] {
            assert!(parse_core_list(bad).is_err(), "{bad}");
        }
        assert_eq!(describe(&[0, 1, 3, 5, 6, 7]), "0-1,3,5-7");
        assert_eq!(default_split(2), Some((vec![0], vec![1])));
        assert_eq!(default_split(8), Some((vec![0, 1, 2, 3], vec![4, 5, 6, 7])));
        assert_eq!(default_split(1), None);
    }
}
