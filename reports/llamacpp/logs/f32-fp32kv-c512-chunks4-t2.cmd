+ llama-perplexity -m $EXT/SmolLM2-135M-Instruct.F32.gguf --chunks 4 -t 2 -ctk f32 -ctv f32 -fa off -b 512 --ppl-output-type 1 -f data/wikitext-2-raw/wiki.test.raw -c 512
# /proc/loadavg before: 3.42 5.16 3.60 3/105 20994
# /proc/loadavg after: 3.27 5.07 3.59 2/93 21208
