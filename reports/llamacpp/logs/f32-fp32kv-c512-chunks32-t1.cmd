+ llama-perplexity -m $EXT/SmolLM2-135M-Instruct.F32.gguf --chunks 32 -t 1 -ctk f32 -ctv f32 -fa off -b 512 --ppl-output-type 1 -f data/wikitext-2-raw/wiki.test.raw -c 512
# /proc/loadavg before: 3.27 5.07 3.59 2/93 21213
# /proc/loadavg after: 3.89 4.93 3.65 4/108 22423
