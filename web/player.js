// hlss player page: plays the page's HLS playlist natively (Safari, iOS) or with hls.js elsewhere,
// keeps the keyboard useful, and says why when playback fails instead of leaving a blank box.
// Served as /assets/player.js; the page gives it its data as JSON in #hlss-data.
'use strict';
(function () {
  var data = JSON.parse(document.getElementById('hlss-data').textContent);
  var video = document.getElementById('video');
  var status = document.getElementById('status');
  var durationText = document.getElementById('duration');
  // What happened, for people debugging in the console and for automated tests.
  var state = (window.hlssPlayer = { engine: null, fatal: null, warnings: [] });

  function show(message, isError) {
    status.textContent = message;
    status.className = isError ? 'error' : '';
  }

  function fail(message) {
    state.fatal = message;
    show(message, true);
  }

  function clock(seconds) {
    var s = Math.floor(seconds % 60);
    var m = Math.floor(seconds / 60) % 60;
    var h = Math.floor(seconds / 3600);
    var two = function (n) { return (n < 10 ? '0' : '') + n; };
    return (h > 0 ? h + ':' + two(m) : String(m)) + ':' + two(s);
  }

  video.addEventListener('durationchange', function () {
    var d = video.duration;
    if (d === Infinity) {
      durationText.textContent = 'still growing (the file is being transcoded)';
    } else if (d > 0) {
      durationText.textContent = clock(d);
    }
  });
  video.addEventListener('waiting', function () { if (!state.fatal) show('Buffering\u2026'); });
  video.addEventListener('playing', function () { if (!state.fatal) show('Playing'); });
  video.addEventListener('pause', function () {
    if (!state.fatal && !video.ended) show('Paused');
  });
  video.addEventListener('ended', function () { if (!state.fatal) show('Ended'); });
  video.addEventListener('error', function () {
    var err = video.error;
    if (state.engine === 'native' && err) {
      fail('Playback failed: ' + (err.message || 'media error ' + err.code) +
        '. Try the playlist link in VLC or mpv.');
    }
  });

  // Browsers block sound until the person has interacted with the site; then start muted and say so.
  function start() {
    var played = video.play();
    if (!played || !played.catch) return;
    played.catch(function (err) {
      if (err && err.name === 'NotAllowedError') {
        video.muted = true;
        video.play().then(function () {
          show('Playing muted: this browser blocks sound until you interact. Press M to unmute.');
        }).catch(function () {
          show('Press Space or the play button to start.');
        });
      }
    });
  }

  function describe(event) {
    var text = 'hls.js ' + (event.fatal ? 'fatal ' : '') + event.type + ': ' + event.details;
    if (event.response && event.response.code) text += ' (HTTP ' + event.response.code + ')';
    if (event.error && event.error.message) text += ': ' + event.error.message;
    else if (event.reason) text += ': ' + event.reason;
    return text;
  }

  function playWithHlsJs() {
    var hls = new Hls({
      // Start at the beginning even while an EVENT playlist still grows.
      startPosition: 0,
      // hlss may wait up to 30 s for a segment it is still making (a seek starts a new transcode).
      fragLoadPolicy: {
        default: {
          maxTimeToFirstByteMs: 30000,
          maxLoadTimeMs: 120000,
          timeoutRetry: { maxNumRetry: 2, retryDelayMs: 0, maxRetryDelayMs: 0 },
          errorRetry: { maxNumRetry: 4, retryDelayMs: 1000, maxRetryDelayMs: 8000 }
        }
      }
    });
    state.hls = hls;
    var recovered = false;
    hls.on(Hls.Events.ERROR, function (_name, event) {
      var text = describe(event);
      if (!event.fatal) {
        state.warnings.push(text);
        console.warn(text);
        return;
      }
      if (event.type === Hls.ErrorTypes.MEDIA_ERROR && !recovered) {
        recovered = true;
        console.warn(text + ' (recovering)');
        hls.recoverMediaError();
        return;
      }
      console.error(text);
      fail('Playback failed. ' + text);
      hls.destroy();
    });
    hls.on(Hls.Events.MANIFEST_PARSED, start);
    hls.loadSource(data.playlist);
    hls.attachMedia(video);
  }

  function playNatively() {
    video.src = data.playlist;
    video.addEventListener('loadedmetadata', start, { once: true });
  }

  var native = video.canPlayType('application/vnd.apple.mpegurl') !== '';
  var hlsjs = typeof Hls !== 'undefined' && Hls.isSupported();
  var apple = /Apple/.test(navigator.vendor || '');
  var wanted = new URLSearchParams(location.search).get('engine');
  if (wanted === 'native' && native) state.engine = 'native';
  else if (wanted === 'hls.js' && hlsjs) state.engine = 'hls.js';
  else if (native && (apple || !hlsjs)) state.engine = 'native';
  else if (hlsjs) state.engine = 'hls.js';

  if (state.engine === 'hls.js') {
    playWithHlsJs();
  } else if (state.engine === 'native') {
    playNatively();
  } else if (typeof Hls === 'undefined') {
    fail('Cannot play here: hls.js did not load from ' + document.getElementById('hlsjs').src +
      ' and this browser does not play HLS itself. Open the playlist link in VLC or mpv.');
  } else {
    fail('Cannot play here: this browser supports neither HLS nor Media Source Extensions. ' +
      'Open the playlist link in VLC or mpv.');
  }

  // Keyboard: works wherever focus is, except on links and form controls.
  document.addEventListener('keydown', function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var tag = e.target && e.target.tagName;
    if (tag === 'A' || tag === 'BUTTON' || tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA') return;
    var d = video.duration;
    var seek = function (t) {
      var end = isFinite(d) ? d : video.seekable.length ? video.seekable.end(0) : t;
      video.currentTime = Math.max(0, Math.min(t, end));
    };
    var key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    if (key === ' ' || key === 'k') {
      if (video.paused) start(); else video.pause();
    } else if (key === 'ArrowLeft') seek(video.currentTime - 5);
    else if (key === 'ArrowRight') seek(video.currentTime + 5);
    else if (key === 'j') seek(video.currentTime - 10);
    else if (key === 'l') seek(video.currentTime + 10);
    else if (key === 'm') {
      video.muted = !video.muted;
      if (!state.fatal && !video.paused) show(video.muted ? 'Playing (muted)' : 'Playing');
    } else if (key === 'f') {
      if (document.fullscreenElement) document.exitFullscreen();
      else if (video.requestFullscreen) video.requestFullscreen();
    } else if (key >= '0' && key <= '9' && isFinite(d)) seek(d * Number(key) / 10);
    else return;
    e.preventDefault();
  });
  video.focus();
})();
