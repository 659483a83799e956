+ build/eval/cli/qeval sweep --model models/external/SmolLM2-135M-Instruct.Q4_1.gguf --protocol configs/protocol-wikitext2-512-first32.json --scheme rtn --bits 8 --group-sizes row --activation dynamic_per_token --backend cpu --jobs 1 --progress none --out reports/perf/eval_speed/qeval-w8a8-cpu.json
# loadavg before: 1.82 1.73 2.24 2/89 4236
# loadavg after: 2.07 1.91 2.20 1/89 17693
