+ llama-perplexity -m models/external/SmolLM2-135M-Instruct.Q4_1.gguf --chunks 32 -t 2 -f data/wikitext-2-raw/wiki.test.raw -c 512
# /proc/loadavg before: 3.75 4.86 3.80 2/93 24126
# /proc/loadavg after: 6.98 5.58 4.21 7/135 25133
