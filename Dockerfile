# Switchboard node image: `docker build -t switchboard:0.1.0 .`
#
# glibc base on purpose: uWebSockets.js ships prebuilt glibc binaries, and the node picks the
# build that loads at start-up. On Debian 12 (glibc 2.36) with Node 20 that is
# @trufflesuite/uws-js-unofficial; musl (Alpine) would load neither.

# ---- build: compile TypeScript to dist/ ----
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY node ./node
RUN npm run build

# ---- runtime: production dependencies and the compiled server only ----
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
RUN groupadd --system --gid 10001 switchboard \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin switchboard
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
COPY node/public ./node/public
COPY --from=build /app/dist/node/src ./dist/node/src
USER 10001:10001
EXPOSE 3000 9090
# SIGTERM reaches node directly (exec form, PID 1): it drains, then exits 0.
CMD ["node", "dist/node/src/main.js", "listen"]
