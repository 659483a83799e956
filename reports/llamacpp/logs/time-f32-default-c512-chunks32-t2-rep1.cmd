+ llama-perplexity -m $EXT/SmolLM2-135M-Instruct.F32.gguf --chunks 32 -t 2 -f data/wikitext-2-raw/wiki.test.raw -c 512
# /proc/loadavg before: 11.20 10.41 9.43 14/158 26717
# /proc/loadavg after: 13.39 12.82 10.93 14/167 32634
