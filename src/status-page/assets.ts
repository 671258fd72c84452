/** The page's only style sheet and script, inline: no CDN, nothing to build or fetch. */

export const STYLE = `body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222}
table{border-collapse:collapse;margin:.3em 0 1em}
th,td{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.st{font-weight:bold;padding:0 .4em;border-radius:3px}
.st-up{background:#c8efc8}.st-down{background:#f6c1c1}.st-suspect{background:#fde7a6}.st-draining{background:#cfd8f6}
.st-lagging{background:#f6dcb5}.none{color:#666}.err{color:#a00}.notice{background:#eef;padding:.4em}
section{margin-bottom:1.2em}h2{margin:.6em 0 .2em;font-size:1.2em}h3{font-size:1em;margin:.4em 0}
form label{margin-right:1em}.stage{white-space:nowrap}`;

/**
 * Live updates and the confirm step. Server-sent events replace each section's body with HTML the
 * server rendered (and escaped); the browser reconnects by itself. Without JavaScript the page is
 * the state as of load and the action form asks for a checkbox instead of confirm().
 */
export const CLIENT_SCRIPT = `(function(){
var fs=document.querySelectorAll('form.act');
Array.prototype.forEach.call(fs,function(f){f.addEventListener('submit',function(e){
var a=e.submitter&&e.submitter.value||'drain';var s=f.querySelector('select');
if(!confirm(a+' '+s.name+' '+s.value+'?')){e.preventDefault();return;}
var c=document.createElement('input');c.type='hidden';c.name='confirm';c.value='yes';f.appendChild(c);});});
if(!window.EventSource)return;
var live=document.getElementById('live');
var es=new EventSource('/status-page/events');
es.onopen=function(){live.textContent='(live)';};
es.onerror=function(){live.textContent='(reconnecting)';};
es.onmessage=function(ev){var d=JSON.parse(ev.data);
for(var k in d){var el=document.getElementById(k);if(el)el.innerHTML=d[k];}
document.body.dataset.updates=String(Number(document.body.dataset.updates)+1);};
})();`;
