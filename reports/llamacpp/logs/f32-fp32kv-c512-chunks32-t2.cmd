+ llama-perplexity -m $EXT/SmolLM2-135M-Instruct.F32.gguf --chunks 32 -t 2 -ctk f32 -ctv f32 -fa off -b 512 --ppl-output-type 1 -f data/wikitext-2-raw/wiki.test.raw -c 512
# /proc/loadavg before: 3.89 4.93 3.65 4/108 22428
# /proc/loadavg after: 4.56 5.10 3.85 2/93 23627
