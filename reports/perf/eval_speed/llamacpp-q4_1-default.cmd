+ /work/ext/llama.cpp-build/bin/llama-perplexity -m models/external/SmolLM2-135M-Instruct.Q4_1.gguf -f data/wikitext-2-raw/wiki.test.raw -c 512 --chunks 32 -t 2 -b 512
# loadavg before: 1.39 1.58 2.30 2/89 4184
# loadavg after: 1.78 1.66 2.28 1/89 4222
