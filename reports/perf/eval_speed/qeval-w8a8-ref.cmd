+ build/eval/cli/qeval sweep --model models/external/SmolLM2-135M-Instruct.Q4_1.gguf --protocol configs/protocol-wikitext2-512-first32.json --scheme rtn --bits 8 --group-sizes row --activation dynamic_per_token --jobs 1 --progress none --out reports/perf/eval_speed/qeval-w8a8-ref.json
# loadavg before: 1.78 1.66 2.28 2/89 4224
# loadavg after: 1.82 1.73 2.24 1/89 4235
