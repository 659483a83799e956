+ llama-perplexity -m $EXT/SmolLM2-135M-Instruct.F32.gguf --chunks 4 -t 1 -ctk f32 -ctv f32 -fa off -b 512 --ppl-output-type 1 -f data/wikitext-2-raw/wiki.test.raw -c 512
# /proc/loadavg before: 3.59 5.25 3.62 3/109 20911
# /proc/loadavg after: 3.42 5.16 3.60 3/105 20989
