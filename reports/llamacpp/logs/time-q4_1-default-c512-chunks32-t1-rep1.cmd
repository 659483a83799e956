+ llama-perplexity -m models/external/SmolLM2-135M-Instruct.Q4_1.gguf --chunks 32 -t 1 -f data/wikitext-2-raw/wiki.test.raw -c 512
# /proc/loadavg before: 9.30 11.66 11.42 12/161 8919
# /proc/loadavg after: 10.94 11.10 11.22 10/166 11694
