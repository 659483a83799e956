+ llama-perplexity -m $EXT/SmolLM2-135M-Instruct.F32.gguf --chunks 4 -t 2 -b 512 -f data/wikitext-2-raw/wiki.test.raw -c 512
# /proc/loadavg before: 8.76 8.18 6.68 8/131 3645
# /proc/loadavg after: 8.93 8.30 6.78 6/129 4450
