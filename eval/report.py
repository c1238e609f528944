"""The report folder: rows as JSON, a Markdown summary and a PNG chart comparing profiles."""
from __future__ import annotations

import json
from pathlib import Path

# MultiSpanQA's span-set scores (exact / partial match), shown for sets of list questions
LIST_COLS = ["em_p", "em_r", "em_f1", "pm_p", "pm_r", "pm_f1", "spans_per_question", "p50_ms", "errors"]
QA_COLS = ["em", "f1", "has_answer_f1", "no_answer_acc", "list_recall", "ece", "auroc", "p50_ms", "p95_ms",
           "peak_rss_mb", "errors"]
SUM_COLS = ["rouge1", "rouge2", "rougeLsum", "lead3_rouge1", "lead3_rouge2", "lead3_rougeLsum", "p50_ms", "p95_ms",
            "peak_rss_mb", "errors"]


def markdown_table(results: dict[str, dict], cols: list[str]) -> str:
    head = "| profile | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols) + "\n"
    body = ""
    for prof, tot in results.items():
        body += f"| {prof} | " + " | ".join("" if tot.get(c) is None else f"{tot[c]:g}" for c in cols) + " |\n"
    return head + body


def write_report(out: Path, set_name: str, kind: str, rows: dict[str, list[dict]], totals: dict[str, dict],
                 command: str, cols: list[str] | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "rows.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    (out / "totals.json").write_text(json.dumps(totals, indent=1), encoding="utf-8")
    cols = cols or (QA_COLS if kind == "qa" else SUM_COLS)
    md = f"# Evaluation: {set_name}\n\nCommand: `{command}`\n\n" + markdown_table(totals, cols)
    (out / "summary.md").write_text(md, encoding="utf-8")
    chart(out / "chart.png", set_name, totals, ["em", "f1"] if kind == "qa" else
          ["rouge1", "lead3_rouge1", "rouge2", "lead3_rouge2", "rougeLsum", "lead3_rougeLsum"])
    if kind == "qa" and any(t.get("reliability") for t in totals.values()):
        reliability_diagram(out / "reliability.png", set_name, totals)


def reliability_diagram(path: Path, title: str, totals: dict[str, dict]) -> None:
    """Mean shown score against how often it was right, per score bin, one line per profile (the
    diagonal is perfect calibration); the legend gives each profile's ECE."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4.2, 4.0), dpi=110)
    ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1, label="perfect")
    for prof, tot in totals.items():
        bins = [b for b in tot.get("reliability") or [] if b["count"]]
        if bins:
            ax.plot([b["mean_prob"] for b in bins], [b["accuracy"] for b in bins], marker="o",
                    label=f"{prof} (ECE {tot['ece']:.3f})")
    ax.set_xlabel("score shown")
    ax.set_ylabel("share right")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"Reliability: {title}")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def chart(path: Path, title: str, totals: dict[str, dict], metrics: list[str]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    profs = list(totals)
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(metrics) * max(1, len(profs)) / 2, 3.2), dpi=110)
    width = 0.8 / max(1, len(profs))
    for j, p in enumerate(profs):
        vals = [totals[p].get(m) or 0 for m in metrics]
        bars = ax.bar([i + j * width for i in range(len(metrics))], vals, width, label=p)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks([i + width * (len(profs) - 1) / 2 for i in range(len(metrics))], metrics)
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
