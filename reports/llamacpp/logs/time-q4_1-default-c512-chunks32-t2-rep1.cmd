+ llama-perplexity -m models/external/SmolLM2-135M-Instruct.Q4_1.gguf --chunks 32 -t 2 -f data/wikitext-2-raw/wiki.test.raw -c 512
# /proc/loadavg before: 13.39 12.82 10.93 14/167 32639
# /proc/loadavg after: 11.16 12.93 11.76 8/145 7143
