# The original project's make targets, delegating to npm.
.PHONY: build test dist clean

build:
	npm ci
	npm run build

test:
	npm test

dist: build
	mkdir -p dist
	npm pack --pack-destination dist

clean:
	rm -rf dist
