+ llama-perplexity -m $EXT/SmolLM2-135M-Instruct.F32.gguf --chunks 32 -t 1 -f data/wikitext-2-raw/wiki.test.raw -c 512
# /proc/loadavg before: 11.16 12.93 11.76 7/145 7148
# /proc/loadavg after: 9.30 11.66 11.42 11/161 8914
