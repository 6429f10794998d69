//! Measured quality of the rule library: recall over redrawn secrets of every rule's shape in
//! several log formats, and false positives over look-alikes. Fails below recall 0.99 or above
//! 0.1% false positives; prints per-family figures (`cargo test --test quality -- --nocapture`).

use std::collections::BTreeMap;
use std::path::Path;

use logveil::engine::Matcher;
use logveil::rules::RuleSet;

#[path = "support/quality.rs"]
mod quality;
#[path = "support/realistic.rs"]
mod realistic;

use quality::{negatives, positives, Sample};

/// Share of the planted secret's bytes covered by findings.
fn covered(m: &Matcher, scratch: &mut logveil::engine::Scratch, s: &Sample) -> bool {
    let findings = m.scan(&s.line, scratch).to_vec();
    let mut pos = 0;
    let mut all = true;
    let mut any = false;
    while let Some(i) = memchr::memmem::find(&s.line[pos..], &s.secret) {
        let (a, b) = (pos + i, pos + i + s.secret.len());
        any = true;
        let mut cov = 0;
        for f in &findings {
            cov += f.end.min(b).saturating_sub(f.start.max(a));
        }
        all &= cov >= b - a;
        pos = b;
    }
    assert!(any, "sample of {} lost its secret", s.rule);
    all
}

#[test]
fn recall_and_false_positives_of_the_rule_library() {
    let set = RuleSet::builtin().unwrap();
    let rules = set.enabled();
    let m = Matcher::new(rules.clone());
    let mut scratch = m.scratch();

    let pos = positives(&rules, 12, 2026);
    // Redacted JSON stays JSON: every sample line that parses still parses after its findings
    // are replaced (the default template has no quotes or backslashes).
    let mut json_lines = 0;
    for s in &pos {
        if serde_json::from_slice::<serde_json::Value>(&s.line).is_err() {
            continue;
        }
        json_lines += 1;
        let findings = m.scan(&s.line, &mut scratch).to_vec();
        let mut out = Vec::with_capacity(s.line.len());
        let mut at = 0;
        for f in &findings {
            out.extend_from_slice(&s.line[at..f.start]);
            out.extend_from_slice(b"[REDACTED:x:k1:0123456789abcdef]");
            at = f.end;
        }
        out.extend_from_slice(&s.line[at..]);
        assert!(
            serde_json::from_slice::<serde_json::Value>(&out).is_ok(),
            "redacting a {} sample ({}) broke its JSON",
            s.rule,
            s.wrapper
        );
    }
    assert!(json_lines > 5000, "only {json_lines} JSON samples");
    let mut fam: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut wrap: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut missed_rules: BTreeMap<String, usize> = BTreeMap::new();
    for s in &pos {
        let ok = covered(&m, &mut scratch, s);
        let f = fam.entry(s.family.clone()).or_default();
        f.0 += 1;
        f.1 += ok as usize;
        let w = wrap.entry(s.wrapper).or_default();
        w.0 += 1;
        w.1 += ok as usize;
        if !ok {
            *missed_rules
                .entry(format!("{} ({})", s.rule, s.wrapper))
                .or_default() += 1;
        }
    }
    let neg = negatives(&rules, 30_000, 2026);
    let mut fp_kind: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut fp_rules: BTreeMap<String, usize> = BTreeMap::new();
    let mut cross: BTreeMap<String, usize> = BTreeMap::new();
    for s in &neg {
        let mut found = m.scan(&s.line, &mut scratch).to_vec();
        if !s.rule.is_empty() {
            // A rule's own negative example may hold what another rule rightly redacts (an
            // invalid Doppler token is still the value of `DOPPLER_TOKEN=`): only the rule
            // itself counts there; the others are listed for review.
            for f in found
                .iter()
                .filter(|f| m.rules()[f.rule as usize].id != s.rule)
            {
                *cross
                    .entry(m.rules()[f.rule as usize].id.clone())
                    .or_default() += 1;
            }
            found.retain(|f| m.rules()[f.rule as usize].id == s.rule);
        }
        let e = fp_kind.entry(s.wrapper.to_string()).or_default();
        e.0 += 1;
        if let Some(f) = found.first() {
            e.1 += 1;
            // A look-alike, not a secret: safe to show, first 4 bytes of the match only.
            println!(
                "FP {} on {:?}: ...{}...",
                m.rules()[f.rule as usize].id,
                s.wrapper,
                String::from_utf8_lossy(&s.line[f.start..f.end.min(f.start + 4)])
            );
            *fp_rules
                .entry(m.rules()[f.rule as usize].id.clone())
                .or_default() += 1;
        }
    }

    let total = pos.len();
    let caught: usize = fam.values().map(|v| v.1).sum();
    let recall = caught as f64 / total as f64;
    let negs = neg.len();
    let fps: usize = fp_kind.values().map(|v| v.1).sum();
    let fp_rate = fps as f64 / negs as f64;
    println!(
        "rules: {} enabled; positives {total}, negatives {negs}",
        rules.len()
    );
    println!("{:<20} {:>8} {:>8}", "family", "samples", "recall");
    for (f, (n, ok)) in &fam {
        println!("{f:<20} {n:>8} {:>8.4}", *ok as f64 / *n as f64);
    }
    for (w, (n, ok)) in &wrap {
        println!("  format {w:<14} {n:>8} {:>8.4}", *ok as f64 / *n as f64);
    }
    println!("{:<20} {:>8} {:>8}", "negatives", "lines", "FP");
    for (k, (n, fp)) in &fp_kind {
        println!("{k:<20} {n:>8} {fp:>8}");
    }
    println!(
        "recall {recall:.4}  false positives {fps}/{negs} = {:.4}%",
        fp_rate * 100.0
    );
    if !missed_rules.is_empty() {
        println!("missed (rule, format): {missed_rules:?}");
    }
    if !cross.is_empty() {
        println!("other rules on rules' negative examples (not counted): {cross:?}");
    }
    if !fp_rules.is_empty() {
        println!("false positives by rule: {fp_rules:?}");
    }
    assert!(
        recall >= 0.99,
        "recall {recall:.4} < 0.99; missed: {missed_rules:?}"
    );
    assert!(
        fp_rate <= 0.001,
        "false positives {:.4}% > 0.1%: {fp_rules:?}",
        fp_rate * 100.0
    );
    // Every enabled rule contributed positives.
    let with_samples: std::collections::HashSet<&str> =
        pos.iter().map(|s| s.rule.as_str()).collect();
    let silent: Vec<&str> = rules
        .iter()
        .map(|r| r.id.as_str())
        .filter(|id| !with_samples.contains(id))
        .collect();
    assert!(
        silent.is_empty(),
        "rules without positive samples: {silent:?}"
    );
}

/// FNV-1a: a per-format seed, so adding a template file does not change the others' values.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The realistic negative corpus: templates of 25+ real log formats (`tests/realistic/`),
/// expanded with seeded values to 100k+ records, none of which holds a secret. Any finding is
/// a false positive; each is listed with its rule, format, template line and first 4 bytes.
#[test]
fn realistic_logs_have_no_findings() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/realistic");
    let formats = realistic::load(&dir).unwrap_or_else(|e| panic!("corpus template: {e}"));
    let set = RuleSet::builtin().unwrap();
    let m = Matcher::new(set.enabled());
    let mut scratch = m.scratch();
    // Three seeds by default (each a corpus of 100k+ records): the values differ, and a rule
    // that fires on one draw in a thousand shows.
    let seeds: Vec<u64> = match std::env::var("LOGVEIL_REALISTIC_SEED") {
        Ok(s) => vec![s.parse().expect("LOGVEIL_REALISTIC_SEED is a number")],
        Err(_) => vec![2026, 7, 99],
    };
    // At least 100k records in all, and no format under 3,000.
    let per_format = (100_000usize.div_ceil(formats.len())).max(3_000);
    // family -> (formats, template blocks, records, bytes, findings)
    let mut fam: BTreeMap<String, (usize, usize, usize, usize, usize)> = BTreeMap::new();
    // "rule in file line N" -> (count, first 4 bytes of one of them)
    let mut fps: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut by_rule: BTreeMap<String, usize> = BTreeMap::new();
    let (mut records, mut bytes) = (0usize, 0usize);
    for (seed, f) in seeds
        .iter()
        .flat_map(|&seed| formats.iter().map(move |f| (seed, f)))
    {
        let mut rng = realistic::Rng::new(seed ^ fnv(&f.name));
        let (text, origin) = f.expand(per_format, &mut rng);
        // To look at what was scanned: LOGVEIL_REALISTIC_DUMP=DIR writes each expanded format.
        if let Some(d) = std::env::var_os("LOGVEIL_REALISTIC_DUMP") {
            let path = Path::new(&d).join(format!("{}--{}.{seed}.log", f.family, f.name));
            std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        let line_starts: Vec<usize> = std::iter::once(0)
            .chain(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1))
            .collect();
        let found = m.scan(text.as_bytes(), &mut scratch).to_vec();
        let e = fam.entry(f.family.clone()).or_default();
        if seed == seeds[0] {
            e.0 += 1;
            e.1 += f.blocks();
        }
        e.2 += origin.len();
        e.3 += text.len();
        e.4 += found.len();
        records += origin.len();
        bytes += text.len();
        for x in &found {
            let rec = line_starts.partition_point(|&s| s <= x.start) - 1;
            let rule = &m.rules()[x.rule as usize].id;
            *by_rule.entry(rule.clone()).or_default() += 1;
            // Not a secret by construction, but shown like one anyway: 4 bytes at most.
            let head = &text.as_bytes()[x.start..x.end.min(x.start + 4)];
            let e = fps
                .entry(format!(
                    "{rule} in {}--{}.tmpl line {}",
                    f.family, f.name, origin[rec]
                ))
                .or_insert((0, String::from_utf8_lossy(head).into_owned()));
            e.0 += 1;
        }
    }
    println!(
        "realistic corpus (seeds {seeds:?}): {} formats, {records} records, {:.1} MiB",
        formats.len(),
        bytes as f64 / (1 << 20) as f64
    );
    println!(
        "{:<12} {:>7} {:>7} {:>9} {:>8} {:>9}",
        "family", "formats", "blocks", "records", "MiB", "findings"
    );
    for (k, (n, nb, r, b, x)) in &fam {
        println!(
            "{k:<12} {n:>7} {nb:>7} {r:>9} {:>8.2} {x:>9}",
            *b as f64 / (1 << 20) as f64
        );
    }
    for (at, (n, head)) in fps.iter().take(300) {
        println!("FP {at}: {n}x, e.g. {head:?}...");
    }
    assert!(formats.len() >= 25, "only {} formats", formats.len());
    assert!(records >= 100_000 * seeds.len(), "only {records} records");
    assert!(
        fps.is_empty(),
        "false positives on {} template lines of realistic logs, by rule: {by_rule:?}",
        fps.len()
    );
}
