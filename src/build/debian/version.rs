//! Debian version numbers compared as dpkg compares them: `[epoch:]upstream[-revision]`, with `~` sorting before everything, even the end of the string.
//!
//! The algorithm is dpkg's `verrevcmp` (lib/dpkg/version.c), described in
//! Debian Policy §5.6.12: alternate runs of non-digits (compared character
//! by character, letters before non-letters, `~` before all, the end of
//! the string after `~` and before anything else) and runs of digits
//! (compared as numbers). It is written here rather than taken from a
//! crate because it is forty lines, and a crate that fits brings regex.

use std::cmp::Ordering;

/// Compares two version strings as `dpkg --compare-versions` does.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (a_epoch, a_upstream, a_revision) = split(a);
    let (b_epoch, b_upstream, b_revision) = split(b);
    a_epoch
        .cmp(&b_epoch)
        .then_with(|| verrevcmp(a_upstream, b_upstream))
        .then_with(|| verrevcmp(a_revision, b_revision))
}

/// Splits at the first `:` (epoch) and the last `-` (revision); a missing
/// epoch is 0 and a missing revision is empty, as in dpkg's
/// `parseversion`.
fn split(version: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match version.split_once(':') {
        Some((epoch, rest)) if epoch.bytes().all(|b| b.is_ascii_digit()) => {
            (epoch.parse().unwrap_or(0), rest)
        }
        _ => (0, version),
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

/// The weight of one non-digit character: `~` lowest, then the end of the
/// part, then letters, then everything else.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // The non-digit prefix, character by character.
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied().filter(|c| !c.is_ascii_digit()));
            let bc = order(b.get(j).copied().filter(|c| !c.is_ascii_digit()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            if i < a.len() && !a[i].is_ascii_digit() {
                i += 1;
            }
            if j < b.len() && !b[j].is_ascii_digit() {
                j += 1;
            }
        }
        // The digit run, as a number: skip leading zeros, then the longer
        // run is larger, else the first differing digit decides.
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let a_start = i;
        let b_start = j;
        while a.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        let (a_run, b_run) = (&a[a_start..i], &b[b_start..j]);
        let by_number = a_run.len().cmp(&b_run.len()).then_with(|| a_run.cmp(b_run));
        if by_number != Ordering::Equal {
            return by_number;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::compare;
    use std::cmp::Ordering::{self, Equal, Greater, Less};

    fn check(a: &str, b: &str, expected: Ordering) {
        assert_eq!(compare(a, b), expected, "{a} vs {b}");
        assert_eq!(compare(b, a), expected.reverse(), "{b} vs {a}");
    }

    /// Cases from dpkg's own test suite (lib/dpkg/t/t-version.c and
    /// src/at/deb-version.at).
    #[test]
    fn dpkg_cases() {
        check("0", "0", Equal);
        check("0", "00", Equal);
        check("1", "0", Greater);
        check("0:0-0", "0:0-0", Equal);
        check("1:0", "0:0", Greater);
        check("1:0", "0:999", Greater);
        check("0:1.0", "0:1.00", Equal);
        check("1.0", "1.0-0", Equal);
        check("1.0-1", "1.0", Greater);
        check("0:0-0", "0:0-1", Less);
        check("0:0-a", "0:0-b", Less);
        check("0:0-1", "0:0-0", Greater);
        check("0:a", "0:b", Less);
        check("0:1", "0:1~", Greater);
        check("1.0~rc1", "1.0", Less);
        check("1.0~rc1", "1.0~rc2", Less);
        check("1.0~~", "1.0~", Less);
        check("1.0~~a", "1.0~~", Greater);
        check("1.0~", "1.0", Less);
        check("1.0a", "1.0", Greater);
        check("1.0a", "1.0+", Less);
        check("1.0+", "1.0.", Less);
        check("2.30-1", "2.3-1", Greater);
        check("5.2.15-2+b7", "5.2.15-2", Greater);
        check("5.2.15-2+b7", "5.2.15-2+b10", Less);
        check("1:2.39-1", "2.40-1", Greater);
        check("1.2.3-1~deb12u1", "1.2.3-1", Less);
        check("7.4.1-1+deb12u2", "7.4.1-1+deb12u10", Less);
        check("1.0-a-b", "1.0-a", Greater);
    }
}
