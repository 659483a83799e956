+ llama-perplexity -m $EXT/SmolLM2-135M-Instruct.F32.gguf --chunks 32 -t 2 -f data/wikitext-2-raw/wiki.test.raw -c 512
# /proc/loadavg before: 4.56 5.10 3.85 2/93 23632
# /proc/loadavg after: 3.75 4.86 3.80 2/93 24121
