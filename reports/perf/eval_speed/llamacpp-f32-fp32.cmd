+ /work/ext/llama.cpp-build/bin/llama-perplexity -m /work/ext/SmolLM2-135M-Instruct.F32.gguf -f data/wikitext-2-raw/wiki.test.raw -c 512 --chunks 32 -t 2 -b 512 -ctk f32 -ctv f32 -fa off
# loadavg before: 0.43 1.48 2.32 1/89 4145
# loadavg after: 1.39 1.58 2.30 1/89 4183
