//! Charts as inline SVG drawn on the server: no script, no chart library in the browser,
//! and readable by screen readers through `<title>`. Written by hand because a bar chart
//! is a few rectangles, and the crates that draw charts bring fonts and rasterizers.

use std::fmt::Write;

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 120.0;
const BASELINE: f64 = 100.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A bar per value, oldest on the left, scaled to the largest.
pub fn bar_chart(values: &[u32], title: &str) -> String {
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    let slot = WIDTH / values.len().max(1) as f64;
    let bar = (slot * 0.8).max(1.0);
    let title = escape(title);
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-labelledby=\"chart-title\" \
         preserveAspectRatio=\"none\" xmlns=\"http://www.w3.org/2000/svg\"><title id=\"chart-title\">{title}</title>\
         <line x1=\"0\" y1=\"{BASELINE}\" x2=\"{WIDTH}\" y2=\"{BASELINE}\" class=\"axis\"/>"
    );
    for (i, value) in values.iter().enumerate() {
        let h = f64::from(*value) / f64::from(max) * (BASELINE - 10.0);
        let x = i as f64 * slot + (slot - bar) / 2.0;
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" class=\"bar\"><title>{value}</title></rect>",
            BASELINE - h
        );
    }
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"{}\" class=\"label\">{} days ago</text><text x=\"{WIDTH}\" y=\"{}\" class=\"label end\">today</text>\
         <text x=\"0\" y=\"9\" class=\"label\">max {max}/day</text></svg>",
        HEIGHT - 4.0,
        values.len(),
        HEIGHT - 4.0
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_value_and_titles_are_escaped() {
        let svg = bar_chart(&[0, 2, 4], "deploys <7 days>");
        assert!(svg.contains("<title id=\"chart-title\">deploys &lt;7 days&gt;</title>"), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("height=\"90.0\""), "the largest bar is full height: {svg}");
        assert!(svg.contains("height=\"45.0\""), "half the largest is half height: {svg}");
        assert!(svg.contains("height=\"0.0\""));
    }

    #[test]
    fn an_empty_window_draws_an_axis_without_dividing_by_zero() {
        let svg = bar_chart(&[0, 0], "none");
        assert!(svg.contains("max 1/day") && !svg.contains("NaN"), "{svg}");
    }
}
