//! The duration and size notation of `proxy.toml` and the command line: `30s`, `1h30m`,
//! `256MiB`, read and written back the same way.
//!
//! A leaf: std only, so the configuration, the route table's printout and the operator CLI
//! share one notation without depending on each other.

use std::time::Duration;

/// Parses `30s`, `5m`, `1h`, `250ms`, `1d` and combinations such as `1h30m`.
///
/// A bare number is refused because its unit would be a guess.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let generic =
        || format!("invalid duration \"{s}\": expected a number followed by ms, s, m, h or d");
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid duration \"{s}\": a unit is required, e.g. \"{s}s\" or \"{s}m\""
        ));
    }
    let too_large = || format!("invalid duration \"{s}\": too large");
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return Err(generic());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(generic());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| too_large())?;
        rest = &rest[digits..];
        let units = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after) = rest.split_at(units);
        rest = after;
        let seconds_per = match unit {
            "ms" => {
                total = total
                    .checked_add(Duration::from_millis(number))
                    .ok_or_else(too_large)?;
                continue;
            }
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(generic()),
        };
        let seconds = number.checked_mul(seconds_per).ok_or_else(too_large)?;
        total = total
            .checked_add(Duration::from_secs(seconds))
            .ok_or_else(too_large)?;
    }
    Ok(total)
}

/// Renders a duration in the notation [`parse_duration`] reads: `5m`, `1h30m`, `250ms`.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_string();
    }
    let mut out = String::new();
    let secs = d.as_secs();
    let parts = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3600, "h"),
        (secs % 3600 / 60, "m"),
        (secs % 60, "s"),
        (u64::from(d.subsec_millis()), "ms"),
    ];
    for (value, unit) in parts {
        if value > 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    // Sub-millisecond remainders never come from the config file, but a duration computed
    // elsewhere should still not print as a misleading "0s".
    let micros = d.subsec_micros() % 1000;
    let nanos = d.subsec_nanos() % 1000;
    if micros > 0 {
        out.push_str(&format!("{micros}us"));
    }
    if nanos > 0 {
        out.push_str(&format!("{nanos}ns"));
    }
    out
}

/// Parses a size: `256MiB`, `512KiB`, `1GiB` (powers of 1024), `100KB`, `1MB` (powers of
/// 1000), `512B`, or a plain number of bytes such as `1024`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let unit = s[digits..].trim_start();
    let generic = || {
        format!("invalid size \"{s}\": expected a number of bytes, optionally followed by B, KB, MB, GB, KiB, MiB or GiB")
    };
    if digits == 0 {
        return Err(generic());
    }
    let number: u64 = s[..digits]
        .parse()
        .map_err(|_| format!("invalid size \"{s}\": too large"))?;
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(generic()),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("invalid size \"{s}\": too large"))
}

/// Renders a byte count in the notation [`parse_size`] reads, using the largest binary unit
/// that divides it exactly: `256MiB`, `1GiB`, `1500B`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(u32, &str); 4] = [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")];
    for (shift, unit) in UNITS {
        if bytes != 0 && bytes.trailing_zeros() >= shift {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_duration(text: &str, expected: Result<Duration, &str>) {
        assert_eq!(
            parse_duration(text),
            expected.map_err(str::to_string),
            "{text}"
        );
    }

    #[test]
    fn durations_table() {
        let secs = Duration::from_secs;
        check_duration("30s", Ok(secs(30)));
        check_duration("5m", Ok(secs(300)));
        check_duration("1h", Ok(secs(3600)));
        check_duration("250ms", Ok(Duration::from_millis(250)));
        check_duration("1d", Ok(secs(86_400)));
        check_duration("1h30m", Ok(secs(5400)));
        check_duration("1m500ms", Ok(Duration::from_millis(60_500)));
        check_duration("0s", Ok(Duration::ZERO));
        let generic = |s: &str| {
            format!("invalid duration \"{s}\": expected a number followed by ms, s, m, h or d")
        };
        for bad in ["5 minutes", "", "m", "1.5h", "5x", "1h 30m", "-1s"] {
            check_duration(bad, Err(&generic(bad)));
        }
        check_duration(
            "30",
            Err("invalid duration \"30\": a unit is required, e.g. \"30s\" or \"30m\""),
        );
        check_duration(
            "99999999999999999999d",
            Err("invalid duration \"99999999999999999999d\": too large"),
        );
    }

    #[test]
    fn format_duration_is_humanized() {
        let cases = [
            (Duration::from_secs(300), "5m"),
            (Duration::from_secs(3600), "1h"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(5400), "1h30m"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(86_400 + 1), "1d1s"),
            (Duration::ZERO, "0s"),
            (Duration::from_micros(1500), "1ms500us"),
        ];
        for (d, text) in cases {
            assert_eq!(format_duration(d), text);
            if !text.contains("us") {
                assert_eq!(parse_duration(text), Ok(d), "{text} round-trips");
            }
        }
    }

    #[test]
    fn sizes_table() {
        let cases: [(&str, Result<u64, &str>); 12] = [
            ("256MiB", Ok(256 << 20)),
            ("1MiB", Ok(1 << 20)),
            ("512KiB", Ok(512 << 10)),
            ("1GiB", Ok(1 << 30)),
            ("100KB", Ok(100_000)),
            ("2MB", Ok(2_000_000)),
            ("1024", Ok(1024)),
            ("512B", Ok(512)),
            ("64 KiB", Ok(64 << 10)),
            (
                "MiB",
                Err("invalid size \"MiB\": expected a number of bytes, optionally followed by B, KB, MB, GB, KiB, MiB or GiB"),
            ),
            (
                "1.5MiB",
                Err("invalid size \"1.5MiB\": expected a number of bytes, optionally followed by B, KB, MB, GB, KiB, MiB or GiB"),
            ),
            ("99999999999GiB", Err("invalid size \"99999999999GiB\": too large")),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_size(text), expected.map_err(str::to_string), "{text}");
        }
    }

    #[test]
    fn format_size_uses_largest_exact_unit() {
        let cases = [
            (256 << 20, "256MiB"),
            (1 << 30, "1GiB"),
            (1536, "1536B"),
            (8 << 10, "8KiB"),
            (0, "0B"),
        ];
        for (bytes, text) in cases {
            assert_eq!(format_size(bytes), text);
            assert_eq!(parse_size(text), Ok(bytes), "{text} round-trips");
        }
    }
}
