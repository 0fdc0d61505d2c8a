//! Bar charts as inline SVG: no script and no library to vendor, readable without
//! colour (every bar has a title with its numbers, and a table follows each chart).
//! The SVG scales to its container (a viewBox), so a phone shows the whole chart.

use chrono::{DateTime, Utc};
use maud::{html, Markup};

/// One series of a chart: its name and CSS class (its colour).
pub(crate) struct Series {
    pub name: &'static str,
    pub class: &'static str,
}

/// One bar per bucket, its series stacked; `buckets` holds one value per series.
/// The SVG stretches to the page's width at a fixed height, so the time labels
/// (every `label_every`th bucket, `label(time)`) are HTML under it, placed by
/// percentage, and never stretched with it.
pub(crate) fn bars(
    title: &str,
    series: &[Series],
    buckets: &[(DateTime<Utc>, Vec<u64>)],
    label_every: usize,
    label: impl Fn(DateTime<Utc>) -> String,
) -> Markup {
    let max = buckets
        .iter()
        .map(|(_, v)| v.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let h = 100.0;
    let n = buckets.len().max(1) as f64;
    let w = 10.0 * n;
    html! {
        figure.chart {
            svg.bars role="img" aria-label=(title) viewBox={"0 0 " (w) " " (h)} preserveAspectRatio="none" {
                @for (i, (t, values)) in buckets.iter().enumerate() {
                    @let mut base = h;
                    @for (j, v) in values.iter().enumerate() {
                        @let bh = h * (*v as f64) / (max as f64);
                        @if let (Some(s), true) = (series.get(j), *v > 0) {
                            @let y = { base -= bh; base };
                            rect class=(s.class) x=(i as f64 * 10.0 + 1.0) y=(y) width="8" height=(bh) {
                                title { (t.format("%Y-%m-%d %H:%M +00:00")) " · " (s.name) ": " (v) }
                            }
                        }
                    }
                }
            }
            div.axis aria-hidden="true" {
                @for (i, (t, _)) in buckets.iter().enumerate() {
                    @if label_every > 0 && i % label_every == 0 {
                        span style={"left: " (format!("{:.2}", 100.0 * i as f64 / n)) "%"} { (label(*t)) }
                    }
                }
            }
            figcaption {
                (title) " (highest bar: " (max) ")"
                @if series.len() > 1 {
                    @for s in series { " " span class={"key " (s.class)} { "■" } " " (s.name) }
                }
            }
        }
    }
}

/// Fills the buckets of `width` between `from` and `to` with the counts that fall in
/// them (times already at bucket starts, or inside one).
pub(crate) fn fill(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    width: chrono::Duration,
    series: usize,
    counts: impl IntoIterator<Item = (DateTime<Utc>, usize, u64)>,
) -> Vec<(DateTime<Utc>, Vec<u64>)> {
    let mut out = Vec::new();
    let mut t = from;
    while t < to {
        out.push((t, vec![0; series]));
        t += width;
    }
    let step = width.num_microseconds().unwrap_or(1).max(1);
    for (at, s, n) in counts {
        let Some(off) = (at - from).num_microseconds() else {
            continue;
        };
        if off < 0 || s >= series {
            continue;
        }
        if let Some((_, v)) = out.get_mut(usize::try_from(off / step).unwrap_or(usize::MAX)) {
            v[s] += n;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn counts_fall_in_their_buckets_and_outsiders_are_left_out() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 0).unwrap();
        let m = chrono::Duration::minutes(10);
        let got = fill(
            t0,
            t0 + m * 3,
            m,
            2,
            [
                (t0, 0, 1),
                (t0 + chrono::Duration::minutes(12), 1, 4),
                (t0 + chrono::Duration::minutes(15), 1, 1),
                (t0 - m, 0, 9),
                (t0 + m * 3, 0, 9),
            ],
        );
        assert_eq!(
            got,
            vec![
                (t0, vec![1, 0]),
                (t0 + m, vec![0, 5]),
                (t0 + m * 2, vec![0, 0])
            ]
        );
    }

    #[test]
    fn every_bar_says_its_numbers() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 0).unwrap();
        let s = bars(
            "Events",
            &[Series {
                name: "events",
                class: "s1",
            }],
            &[(t0, vec![7])],
            1,
            |t| t.format("%H:%M").to_string(),
        )
        .into_string();
        assert!(s.contains("2026-12-06 10:00 +00:00 · events: 7"), "{s}");
        assert!(s.contains(">10:00<"), "{s}");
    }
}
