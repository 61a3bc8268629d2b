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
  var audioMenu = document.getElementById('audio-track');
  var subtitleMenu = document.getElementById('subtitle-track');

  // The viewer's language choices, kept in this browser for every file: a track in the
  // language chosen last is picked again (by its LANGUAGE, else its NAME).
  function remembered(kind) {
    try { return JSON.parse(localStorage.getItem('hlss.' + kind) || 'null'); } catch (e) { return null; }
  }
  function remember(kind, track) {
    try {
      localStorage.setItem('hlss.' + kind, JSON.stringify(track ? { lang: track.lang || '', name: track.name || '' } : { off: true }));
    } catch (e) { /* storage refused: the choice holds for this page only */ }
  }
  function preferred(kind, tracks) {
    var want = remembered(kind);
    if (!want) return null;
    if (want.off) return -1;
    for (var i = 0; i < tracks.length; i++) {
      if (want.lang && tracks[i].lang === want.lang) return i;
    }
    for (var j = 0; j < tracks.length; j++) {
      if (want.name && tracks[j].name === want.name) return j;
    }
    return null;
  }

  // Fills a menu with `tracks` ({name, lang}); `off` adds an "Off" entry (value -1).
  function fillMenu(menu, tracks, selected, off) {
    menu.textContent = '';
    if (off) menu.appendChild(new Option('Off', '-1'));
    tracks.forEach(function (track, i) {
      var label = track.name || track.lang || 'Track ' + (i + 1);
      if (track.lang && label.indexOf(track.lang) < 0) label += ' (' + track.lang + ')';
      menu.appendChild(new Option(label, String(i)));
    });
    menu.value = String(selected);
    menu.parentNode.hidden = tracks.length < (off ? 1 : 2);
  }

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
    // hls.js picks the remembered languages itself as it loads the master playlist.
    var selection = function (want) {
      if (!want || want.off) return undefined;
      return want.lang ? { lang: want.lang } : want.name ? { name: want.name } : undefined;
    };
    var hls = new Hls({
      audioPreference: selection(remembered('audio')),
      subtitlePreference: selection(remembered('subtitles')),
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
    var audioList = function () {
      return hls.audioTracks.map(function (t) { return { name: t.name, lang: t.lang }; });
    };
    var subtitleList = function () {
      return hls.subtitleTracks.map(function (t) { return { name: t.name, lang: t.lang }; });
    };
    hls.on(Hls.Events.AUDIO_TRACKS_UPDATED, function () {
      var tracks = audioList();
      var pick = preferred('audio', tracks);
      if (pick !== null && pick >= 0 && pick !== hls.audioTrack) hls.audioTrack = pick;
      fillMenu(audioMenu, tracks, hls.audioTrack, false);
      state.audioTracks = tracks;
    });
    hls.on(Hls.Events.AUDIO_TRACK_SWITCHED, function (_name, event) {
      audioMenu.value = String(event.id);
      state.audioTrack = event.id;
    });
    hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, function () {
      var tracks = subtitleList();
      var pick = preferred('subtitles', tracks);
      hls.subtitleDisplay = true;
      if (pick !== null && pick !== hls.subtitleTrack) hls.subtitleTrack = pick;
      fillMenu(subtitleMenu, tracks, pick !== null ? pick : hls.subtitleTrack, true);
      state.subtitleTracks = tracks;
    });
    hls.on(Hls.Events.SUBTITLE_TRACK_SWITCH, function (_name, event) {
      subtitleMenu.value = String(event.id);
      state.subtitleTrack = event.id;
    });
    audioMenu.addEventListener('change', function () {
      var i = Number(audioMenu.value);
      hls.audioTrack = i;
      remember('audio', audioList()[i]);
    });
    subtitleMenu.addEventListener('change', function () {
      var i = Number(subtitleMenu.value);
      hls.subtitleDisplay = true;
      hls.subtitleTrack = i;
      remember('subtitles', i >= 0 ? subtitleList()[i] : null);
    });
    hls.loadSource(data.playlist);
    hls.attachMedia(video);
  }

  // Safari plays the renditions itself and lists them as the video's audio and text tracks.
  function nativeMenus() {
    var audio = video.audioTracks;
    if (audio && audio.length) {
      var list = [];
      var selected = 0;
      for (var i = 0; i < audio.length; i++) {
        list.push({ name: audio[i].label, lang: audio[i].language });
        if (audio[i].enabled) selected = i;
      }
      var pick = preferred('audio', list);
      if (pick !== null && pick >= 0) selected = pick;
      for (var a = 0; a < audio.length; a++) audio[a].enabled = a === selected;
      fillMenu(audioMenu, list, selected, false);
      audioMenu.addEventListener('change', function () {
        var n = Number(audioMenu.value);
        for (var j = 0; j < audio.length; j++) audio[j].enabled = j === n;
        remember('audio', list[n]);
      });
    }
    var text = [];
    for (var t = 0; t < video.textTracks.length; t++) {
      var track = video.textTracks[t];
      if (track.kind === 'subtitles' || track.kind === 'captions') text.push(track);
    }
    if (!text.length) return;
    var names = text.map(function (tr) { return { name: tr.label, lang: tr.language }; });
    var shown = preferred('subtitles', names);
    if (shown === null) shown = -1;
    var showOnly = function (n) {
      text.forEach(function (tr, k) { tr.mode = k === n ? 'showing' : 'disabled'; });
    };
    showOnly(shown);
    fillMenu(subtitleMenu, names, shown, true);
    subtitleMenu.addEventListener('change', function () {
      var n = Number(subtitleMenu.value);
      showOnly(n);
      remember('subtitles', n >= 0 ? names[n] : null);
    });
  }

  function playNatively() {
    video.src = data.playlist;
    video.addEventListener('loadedmetadata', function () {
      nativeMenus();
      start();
    }, { once: true });
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
  // "Copy a link": asks the server for a signed link to this file (only a logged-in viewer may)
  // and shows it two ways, the player page for a browser and the playlist for other players;
  // the page's address goes to the clipboard, where the browser allows it.
  var shareButton = document.getElementById('share');
  if (data.share && shareButton) {
    var sharePage = document.getElementById('share-page');
    var shareUrl = document.getElementById('share-url');
    var shareExpires = document.getElementById('share-expires');
    shareButton.parentNode.parentNode.hidden = false;
    shareButton.addEventListener('click', function () {
      var url = data.share + '?expires=' + encodeURIComponent(shareExpires.value);
      fetch(url, { credentials: 'same-origin', cache: 'no-store' }).then(function (r) {
        if (!r.ok) throw new Error('the server answered ' + r.status);
        return r.json();
      }).then(function (shared) {
        state.sharedLink = location.origin + shared.playlist;
        state.sharedPage = location.origin + shared.page;
        sharePage.value = state.sharedPage;
        shareUrl.value = state.sharedLink;
        document.getElementById('shared').hidden = false;
        sharePage.select();
        if (navigator.clipboard) {
          navigator.clipboard.writeText(state.sharedPage).then(function () {
            shareButton.textContent = 'Copied';
          }, function () { /* the fields hold it */ });
        }
      }).catch(function (e) {
        shareButton.textContent = 'No link: ' + e.message;
      });
    });
  }
  video.focus();
})();
