+ llama-perplexity -m models/external/SmolLM2-135M-Instruct.Q4_1.gguf --chunks 4 -t 2 -b 512 -f data/wikitext-2-raw/wiki.test.raw -c 512
# /proc/loadavg before: 6.98 5.58 4.21 7/135 25138
# /proc/loadavg after: 7.13 5.80 4.34 8/128 25767
