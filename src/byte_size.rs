//! Sizes in bytes as a person writes and reads them: `512MiB`, `2 GiB`, `1G`, `1048576`.

/// Reads a size: a whole number of bytes, or a number followed by a unit (K, M, G, T with
/// or without `iB`/`B`, any case), each 1024 times the one before.
pub fn parse(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = (text[..split].trim(), text[split..].trim());
    let shift = match unit.to_ascii_lowercase().trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(format!("`{text}`: the unit must be one of B, KiB, MiB, GiB, TiB")),
    };
    let value: f64 =
        number.parse().map_err(|_| format!("`{text}` is not a size: write e.g. 4GiB, 512MiB or 1048576"))?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("`{text}` is larger than any memory"));
    }
    Ok(bytes as u64)
}

/// A size the way a person reads it: the largest unit that keeps a whole number, up to one
/// decimal (`12 GiB`, `1.5 GiB`, `300 bytes`).
pub fn show(bytes: u64) -> String {
    const UNITS: [(&str, u32); 4] = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
    for (unit, shift) in UNITS {
        if bytes >= 1 << shift {
            let value = bytes as f64 / (1u64 << shift) as f64;
            let text = format!("{value:.1}");
            return format!("{} {unit}", text.strip_suffix(".0").unwrap_or(&text));
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_or_without_units() {
        assert_eq!(parse("1048576"), Ok(1 << 20));
        assert_eq!(parse("512MiB"), Ok(512 << 20));
        assert_eq!(parse("2 GiB"), Ok(2 << 30));
        assert_eq!(parse("1g"), Ok(1 << 30));
        assert_eq!(parse("1.5GB"), Ok(3 << 29));
        assert_eq!(parse("0"), Ok(0));
        assert!(parse("12 parsecs").is_err());
        assert!(parse("GiB").is_err());
        assert!(parse("99999999999999TiB").is_err());
    }

    #[test]
    fn sizes_show_in_the_largest_whole_unit() {
        assert_eq!(show(12 << 30), "12 GiB");
        assert_eq!(show(3 << 29), "1.5 GiB");
        assert_eq!(show(300), "300 bytes");
    }
}
